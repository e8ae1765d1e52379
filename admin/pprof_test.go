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
		{"/debug/pprof/cmdline", ""},
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

	// A path that cleans to the profiler is rejected too.
	resp := env.request(t, http.MethodGet, "/x/../debug/pprof/heap", "", nil, nil)
	resp.assertError(t, http.StatusUnauthorized, errMsgBadToken)
}
