package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/proxy"
)

// Limits of the hostile stack, small so the tests stay fast. serve sets
// the same http.Server fields from --read-header-timeout,
// --client-idle-timeout and its fixed 1 MiB header limit.
const (
	hostileMaxBody        = 4096
	hostileMaxHeaderBytes = 4096
	hostileTimeout        = 300 * time.Millisecond
	// rawDeadline bounds every raw connection, so a broken timeout fails
	// the test instead of hanging it.
	rawDeadline = 5 * time.Second
)

// upstreamLog records the host and request URI of every request that
// reached the stand-in.
type upstreamLog struct {
	mu       sync.Mutex
	requests []string
}

func (l *upstreamLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.requests = append(l.requests, r.Host+" "+r.RequestURI)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (l *upstreamLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.requests) == 0 {
		return ""
	}
	return l.requests[len(l.requests)-1]
}

// newHostileStack returns a stack with small body, header and timeout
// limits, an upstream log and a decoy server that no request may reach.
func newHostileStack(t *testing.T, databaseURL string) (*stack, *upstreamLog, *httptest.Server, *int) {
	t.Helper()
	log := &upstreamLog{}
	s := newStackWith(t, databaseURL, stackOptions{
		upstream: log.wrap,
		proxy:    func(c *proxy.Config) { c.MaxRequestBody = hostileMaxBody },
		server: func(srv *http.Server) {
			srv.MaxHeaderBytes = hostileMaxHeaderBytes
			srv.ReadHeaderTimeout = hostileTimeout
			srv.IdleTimeout = hostileTimeout
		},
	})
	var mu sync.Mutex
	decoyHits := 0
	decoy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		decoyHits++
		mu.Unlock()
	}))
	t.Cleanup(decoy.Close)
	return s, log, decoy, &decoyHits
}

// rawExchange sends raw bytes on a new connection to addr and reads one
// response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(rawDeadline))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestHostileRouting sends request lines and headers that try to point
// the proxy at another host. Every request must reach the configured
// upstream, with the upstream's own Host, and none the decoy, because a
// proxy that follows the request line is an open relay holding the
// callers' API keys.
func TestHostileRouting(t *testing.T) {
	forEachStore(t, func(t *testing.T, databaseURL string) {
		s, upstream, decoy, decoyHits := newHostileStack(t, databaseURL)
		proxyAddr := strings.TrimPrefix(s.proxy.URL, "http://")
		upstreamHost := strings.TrimPrefix(s.upstream.URL, "http://")
		decoyHost := strings.TrimPrefix(decoy.URL, "http://")
		body := `{"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}]}`
		post := func(target, host string) string {
			return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				target, host, apiKey, len(body), body)
		}
		get := func(target, host string) string {
			return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, host, apiKey)
		}

		tests := []struct {
			name       string
			raw        string
			wantStatus int
			wantURI    string // the request URI the upstream saw
		}{
			{"absolute URI", post("http://"+decoyHost+"/chat/completions", decoyHost), 200, "/chat/completions"},
			{"absolute https URI", post("https://"+decoyHost+"/chat/completions", decoyHost), 200, "/chat/completions"},
			{"forged Host", post("/chat/completions", decoyHost), 200, "/chat/completions"},
			{"dot segments", get("/../../"+decoyHost+"/models", decoyHost), 404, "/../../" + decoyHost + "/models"},
			{"double slash authority", get("//"+decoyHost+"/models", decoyHost), 404, "//" + decoyHost + "/models"},
			{"encoded dot segments", get("/%2e%2e/%2e%2e/models", decoyHost), 404, "/%2e%2e/%2e%2e/models"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, respBody := rawExchange(t, proxyAddr, tt.raw)
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status = %d, want %d; body: %s", resp.StatusCode, tt.wantStatus, respBody)
				}
				if got, want := upstream.last(), upstreamHost+" "+tt.wantURI; got != want {
					t.Errorf("upstream saw %q, want %q", got, want)
				}
			})
		}
		if *decoyHits != 0 {
			t.Errorf("decoy got %d requests, want 0", *decoyHits)
		}
	})
}

// TestHostileLimits checks the responses to oversized input. A body over
// the limit gets 413 with an OpenAI-format error and a record. Oversized
// or too many headers get 431 and no record.
func TestHostileLimits(t *testing.T) {
	forEachStore(t, func(t *testing.T, databaseURL string) {
		s, _, _, _ := newHostileStack(t, databaseURL)
		proxyAddr := strings.TrimPrefix(s.proxy.URL, "http://")

		// A prompt that carries a key, to check the stored head is masked.
		// The body is far over the limit, so most of it is never read.
		big := `{"model":"deepseek-chat","messages":[{"role":"user","content":"my key ` + apiKey + ` ` + strings.Repeat("x", 100_000) + `"}]}`
		req, _ := http.NewRequest(http.MethodPost, s.proxy.URL+"/chat/completions", strings.NewReader(big))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST oversized body: %v", err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: status = %d, want 413", resp.StatusCode)
		}
		var envelope struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &envelope); err != nil || !strings.Contains(envelope.Error.Message, "larger than") || envelope.Error.Type == "" {
			t.Errorf("oversized body: body %s, want an OpenAI-format error naming the limit", data)
		}
		rec := s.recordByID(t, resp.Header.Get(proxy.RequestIDHeader))
		if rec.StatusCode != http.StatusRequestEntityTooLarge || rec.Success {
			t.Errorf("oversized body record: status %d success %v, want 413 and false", rec.StatusCode, rec.Success)
		}
		if strings.Contains(rec.RequestData, apiKey) || !strings.Contains(rec.RequestData, "sk-****abcd") {
			t.Errorf("oversized body record: request_data %.120q..., want the key masked", rec.RequestData)
		}

		headerTests := []struct {
			name    string
			headers string
		}{
			{"one huge header", "X-Big: " + strings.Repeat("a", 3*hostileMaxHeaderBytes) + "\r\n"},
			{"too many headers", strings.Repeat("X-Many: 0123456789012345678901234567890123456789\r\n", 400)},
		}
		for _, tt := range headerTests {
			t.Run(tt.name, func(t *testing.T) {
				raw := "POST /chat/completions HTTP/1.1\r\nHost: x\r\n" + tt.headers + "Content-Length: 2\r\n\r\n{}"
				resp, _ := rawExchange(t, proxyAddr, raw)
				if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("status = %d, want 431", resp.StatusCode)
				}
			})
		}

		// Only the 413 call is recorded.
		if recs := s.waitRecords(t, 1); recs[0].ID != rec.ID {
			t.Errorf("stored record %s, want only %s", recs[0].ID, rec.ID)
		}
	})
}

// TestHostileSlowClients checks that a client that never finishes its
// headers, and an idle keep-alive connection, are cut by the server's
// timeouts instead of holding a connection forever.
func TestHostileSlowClients(t *testing.T) {
	s, _, _, _ := newHostileStack(t, testdb.SQLiteURL(t))
	proxyAddr := strings.TrimPrefix(s.proxy.URL, "http://")

	tests := []struct {
		name string
		send string
		// response is true when a full response comes before the cut.
		response bool
	}{
		{"headers never finished", "POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: appl", false},
		{"idle keep-alive", "GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + apiKey + "\r\n\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", proxyAddr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(rawDeadline))
			if _, err := io.WriteString(conn, tt.send); err != nil {
				t.Fatalf("write: %v", err)
			}
			reader := bufio.NewReader(conn)
			if tt.response {
				resp, err := http.ReadResponse(reader, nil)
				if err != nil {
					t.Fatalf("read response: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}

			// The server must close the connection well before rawDeadline.
			_, err = reader.ReadByte()
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("connection still open after %s, want it closed by the server after about %s", rawDeadline, hostileTimeout)
			}
			if err == nil {
				t.Fatalf("read a byte, want the connection closed")
			}
		})
	}
}

// TestHostileStoredStrings checks hostile text that is stored. Attribution
// headers are cut and cleaned of control characters. A prompt full of HTML
// and script comes back from the records API as JSON text that a browser
// will not run. A call that opts out of body storage keeps no body.
func TestHostileStoredStrings(t *testing.T) {
	forEachStore(t, func(t *testing.T, databaseURL string) {
		s, _, _, _ := newHostileStack(t, databaseURL)
		const script = `<script>alert("x")</script><img src=x onerror=alert(1)>&amp;`
		body := `{"model":"deepseek-chat","messages":[{"role":"user","content":` + jsonString(script) + `}]}`

		send := func(header http.Header) string {
			t.Helper()
			req, _ := http.NewRequest(http.MethodPost, s.proxy.URL+"/chat/completions", strings.NewReader(body))
			req.Header = header
			req.Header.Set("Authorization", "Bearer "+apiKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			return resp.Header.Get(proxy.RequestIDHeader)
		}

		longUser := "user\t\u0085\u200b" + strings.Repeat("é", 400)
		id := send(http.Header{
			proxy.UserIDHeader:  {longUser},
			proxy.PageTabHeader: {"tab\u009b<b>"},
		})
		rec := s.recordByID(t, id)
		if n := utf8.RuneCountInString(rec.UserID); n != proxy.MaxAttributionLength {
			t.Errorf("user_id has %d characters, want %d", n, proxy.MaxAttributionLength)
		}
		for _, field := range []string{rec.UserID, rec.PageTab} {
			if strings.IndexFunc(field, unicode.IsControl) >= 0 {
				t.Errorf("attribution %q contains a control character", field)
			}
		}

		get, err := http.NewRequest(http.MethodGet, s.admin.URL+"/api/admin/api-usage/records/"+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		get.Header.Set("Authorization", "Bearer "+adminToken)
		got, err := http.DefaultClient.Do(get)
		if err != nil {
			t.Fatalf("GET record: %v", err)
		}
		raw, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if ct := got.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		if v := got.Header.Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("X-Content-Type-Options = %q, want nosniff", v)
		}
		for _, markup := range []string{"<script>", "<img", "&amp;"} {
			if strings.Contains(string(raw), markup) {
				t.Errorf("records API body contains raw %q, want it escaped", markup)
			}
		}
		var detail struct {
			Data struct {
				Message     string `json:"message"`
				RequestData string `json:"request_data"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &detail); err != nil {
			t.Fatalf("decode record: %v", err)
		}
		if detail.Data.Message != script || detail.Data.RequestData != body {
			t.Errorf("message, request_data = %q, %q; want the prompt back as text", detail.Data.Message, detail.Data.RequestData)
		}

		optOut := send(http.Header{proxy.StoreBodiesHeader: {"none"}})
		rec = s.recordByID(t, optOut)
		if rec.RequestData != "" || rec.ResponseData != "" || rec.Message != "N/A" {
			t.Errorf("opted-out record: request_data %q response_data %q message %q, want none kept", rec.RequestData, rec.ResponseData, rec.Message)
		}
		if rec.PromptTokens == 0 || !rec.Priced {
			t.Errorf("opted-out record: prompt tokens %d priced %v, want the metering kept", rec.PromptTokens, rec.Priced)
		}
	})
}

// jsonString returns s as a JSON string literal.
func jsonString(s string) string {
	data, _ := json.Marshal(s)
	return string(data)
}
