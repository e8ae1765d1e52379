package admin

import (
	"net/http"
	"strings"
	"testing"
)

// TestPprofNeedsToken checks that the profiler answers only with the admin
// token, because profiles expose code paths and memory contents and a CPU
// profile costs CPU while it runs.
func TestPprofNeedsToken(t *testing.T) {
	env := newTestEnv(t, nil)
	paths := []struct {
		path     string
		wantBody string
	}{
		{"/debug/pprof/", "heap"},
		{"/debug/pprof/heap?debug=1", "heap profile"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
	}
	for _, p := range paths {
		t.Run(p.path, func(t *testing.T) {
			resp := env.request(t, http.MethodGet, p.path, "", nil, nil)
			resp.assertError(t, http.StatusUnauthorized, errMsgBadToken)

			resp = env.request(t, http.MethodGet, p.path, testToken, nil, nil)
			if resp.status != http.StatusOK {
				t.Fatalf("with the token: status = %d, want 200; body: %.200s", resp.status, resp.body)
			}
			if !strings.Contains(string(resp.body), p.wantBody) {
				t.Errorf("with the token: body %.200q does not contain %q", resp.body, p.wantBody)
			}
		})
	}

	// The command line is not served: it can carry the admin token and the
	// database password.
	resp := env.request(t, http.MethodGet, "/debug/pprof/cmdline", testToken, nil, nil)
	if resp.status != http.StatusNotFound || strings.Contains(string(resp.body), "serve") {
		t.Errorf("cmdline: status = %d, body %.200q; want 404 without the command line", resp.status, resp.body)
	}

	// A path that cleans to the profiler is rejected too.
	resp = env.request(t, http.MethodGet, "/x/../debug/pprof/heap", "", nil, nil)
	resp.assertError(t, http.StatusUnauthorized, errMsgBadToken)
}

// A read token gets no profile: a heap profile holds memory contents, the
// admin token among them, so a read token could otherwise become admin.
func TestPprofNeedsAdminRole(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.RoleTokens = []Token{{Name: "viewer", Role: RoleRead, Secret: "read-token-0123456789abcdef"}}
	})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine", "/x/../debug/pprof/heap"} {
		resp := env.request(t, http.MethodGet, path, "read-token-0123456789abcdef", nil, nil)
		if resp.status != http.StatusForbidden {
			t.Errorf("%s with a read token: status = %d, want 403", path, resp.status)
		}
	}
	if resp := env.request(t, http.MethodGet, "/debug/pprof/heap?debug=1", testToken, nil, nil); resp.status != http.StatusOK {
		t.Errorf("admin token: status = %d, want 200", resp.status)
	}
}
