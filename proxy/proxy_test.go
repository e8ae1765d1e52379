package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testlog"
	"github.com/deepmeter/deepmeter/metering"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// recordSink collects finished records in place of the writer queue,
// which has its own tests against the real stores.
type recordSink struct {
	mu      sync.Mutex
	records []store.Record
	added   chan struct{}
}

func newRecordSink() *recordSink { return &recordSink{added: make(chan struct{}, 10000)} }

func (s *recordSink) Enqueue(r store.Record) bool {
	s.mu.Lock()
	s.records = append(s.records, r)
	s.mu.Unlock()
	s.added <- struct{}{}
	return true
}

// wait returns the first n records, failing the test if they do not arrive.
func (s *recordSink) wait(t *testing.T, n int) []store.Record {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.records)
		if got >= n {
			out := append([]store.Record(nil), s.records...)
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("got %d records, want %d", got, n)
		}
	}
}

func (s *recordSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

var testTime = time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC)

func testPrices(t *testing.T) *pricing.Table {
	t.Helper()
	table, err := pricing.NewTable([]pricing.Entry{{
		Model:         "deepseek-chat",
		EffectiveFrom: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC),
		Currency:      "USD",
		Rates:         pricing.Rates{Hit: 28_000, Miss: 280_000, Output: 420_000},
	}})
	if err != nil {
		t.Fatalf("price table: %v", err)
	}
	return table
}

// newTestProxy starts the proxy in front of upstream and returns its URL
// and the records it writes.
func newTestProxy(t *testing.T, upstream string, configure func(*Config)) (*httptest.Server, *recordSink) {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecordSink()
	meter := metering.NewMeter(testPrices(t), sink, nil, nil, metering.Options{Now: func() time.Time { return testTime }})
	cfg := Config{Upstream: u, Meter: meter, Now: func() time.Time { return testTime }}
	if configure != nil {
		configure(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv, sink
}

const chatBody = `{"model":"deepseek-chat","messages":[{"role":"user","content":"hello"}]}`

const chatResponse = `{"id":"c1","object":"chat.completion","model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":1500,"completion_tokens":800,"total_tokens":2300,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":1500}}`

// Everything the client sends, except the attribution headers, reaches the
// upstream unchanged, and the upstream's answer reaches the client
// unchanged apart from the request-id header. This is what "change only the
// base URL" promises a service owner.
func TestProxyForwardsRequestAndResponseUnchanged(t *testing.T) {
	var got struct {
		method, path, query, auth, custom, host string
		body                                    []byte
		attribution                             []string
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.query = r.Method, r.URL.Path, r.URL.RawQuery
		got.auth, got.custom, got.host = r.Header.Get("Authorization"), r.Header.Get("X-Custom"), r.Host
		got.body, _ = io.ReadAll(r.Body)
		for _, h := range []string{UserIDHeader, PageTabHeader, EndpointHeader} {
			if v := r.Header.Get(h); v != "" {
				got.attribution = append(got.attribution, h+"="+v)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, chatResponse)
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions?x=1", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer sk-client-key-1234")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set(UserIDHeader, "user-7")
	req.Header.Set(PageTabHeader, "search")
	req.Header.Set(EndpointHeader, "/api/ai/search")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	checks := []struct{ name, got, want string }{
		{"method", got.method, http.MethodPost},
		{"path", got.path, "/chat/completions"},
		{"query", got.query, "x=1"},
		{"authorization", got.auth, "Bearer sk-client-key-1234"},
		{"custom header", got.custom, "kept"},
		{"host", got.host, strings.TrimPrefix(upstream.URL, "http://")},
		{"request body", string(got.body), chatBody},
		{"attribution headers upstream", strings.Join(got.attribution, ","), ""},
		{"response body", string(body), chatResponse},
		{"response header", resp.Header.Get("X-Upstream"), "yes"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	id := resp.Header.Get(RequestIDHeader)
	if id == "" {
		t.Fatalf("no %s header", RequestIDHeader)
	}

	rec := sink.wait(t, 1)[0]
	if rec.ID != id {
		t.Errorf("record id %q, header id %q", rec.ID, id)
	}
	if rec.UserID != "user-7" || rec.PageTab != "search" || rec.Endpoint != "/api/ai/search" || rec.UpstreamPath != "/chat/completions" {
		t.Errorf("attribution: got user %q tab %q endpoint %q path %q", rec.UserID, rec.PageTab, rec.Endpoint, rec.UpstreamPath)
	}
	if !rec.Success || rec.StatusCode != 200 || rec.PromptTokens != 1500 || rec.CompletionTokens != 800 {
		t.Errorf("record: success %v status %d prompt %d completion %d", rec.Success, rec.StatusCode, rec.PromptTokens, rec.CompletionTokens)
	}
	if !rec.Priced || rec.Cost.String() != "0.000756" {
		t.Errorf("cost: priced %v cost %s, want 0.000756", rec.Priced, rec.Cost)
	}
	if rec.RequestData != chatBody {
		t.Errorf("request_data: got %q", rec.RequestData)
	}
}

// The client's forwarding headers reach the upstream unchanged, which
// httputil's Rewrite mode would otherwise strip, and an upstream that
// sends its own request id header does not give the client a second one.
// Both hold for metered and unmetered paths.
func TestProxyForwardingAndRequestIDHeaders(t *testing.T) {
	forwarding := map[string][]string{
		"Forwarded":         {"for=192.0.2.60;proto=https;by=203.0.113.43"},
		"X-Forwarded-For":   {"192.0.2.60", "198.51.100.17"},
		"X-Forwarded-Host":  {"api.example.com"},
		"X-Forwarded-Proto": {"https"},
	}
	var mu sync.Mutex
	var received http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		received = r.Header.Clone()
		mu.Unlock()
		w.Header().Set(RequestIDHeader, "upstream-id")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, chatResponse)
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	tests := []struct {
		name, method, path, body string
	}{
		{"metered", http.MethodPost, "/chat/completions", chatBody},
		{"unmetered", http.MethodGet, "/models", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			for name, values := range forwarding {
				req.Header[name] = values
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			mu.Lock()
			got := received
			mu.Unlock()
			for name, want := range forwarding {
				if !slices.Equal(got[name], want) {
					t.Errorf("upstream got %s = %q, want %q", name, got[name], want)
				}
			}
			ids := resp.Header.Values(RequestIDHeader)
			if len(ids) != 1 || ids[0] == "upstream-id" {
				t.Errorf("client got %s = %q, want only the proxy's id", RequestIDHeader, ids)
			}
		})
	}
	if rec := sink.wait(t, 1)[0]; !rec.Success {
		t.Errorf("metered record: success = false (%q), want true", rec.ErrorMessage)
	}
}

// A request line with an absolute URI naming another host must still go
// to the configured upstream, never to the named host.
func TestProxyIgnoresAbsoluteURIHost(t *testing.T) {
	var hits int
	var mu sync.Mutex
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	defer upstream.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached the other host: %s %s", r.Method, r.URL)
	}))
	defer other.Close()
	srv, _ := newTestProxy(t, upstream.URL, nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s/models HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", other.URL, strings.TrimPrefix(other.URL, "http://"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 1 {
		t.Errorf("upstream hits %d, want 1", hits)
	}
}

// An event stream must reach the client event by event: the client reads
// the first event while the upstream still holds the rest back.
func TestProxyFlushesEachEvent(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		io.WriteString(w, `data: {"id":"s","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"a"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, `data: {"id":"s","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":3}}`+"\n\ndata: [DONE]\n\n")
	}))
	defer upstream.Close()
	defer close(release)
	srv, sink := newTestProxy(t, upstream.URL, nil)

	resp, err := http.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"deepseek-chat","stream":true,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if !strings.Contains(line, `"content":"a"`) {
			t.Errorf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first event not flushed to the client while the upstream waits")
	}
	release <- struct{}{}
	io.Copy(io.Discard, resp.Body)
	rec := sink.wait(t, 1)[0]
	if !rec.Stream || rec.PromptTokens != 3 || rec.CompletionTokens != 2 || !rec.Success {
		t.Errorf("record: stream %v prompt %d completion %d success %v", rec.Stream, rec.PromptTokens, rec.CompletionTokens, rec.Success)
	}
}

// Many fast streams in a row over one connection: a plain ReverseProxy cut
// a few percent of them when the upstream answered before the request body
// was read in full. None may be cut here.
func TestProxyManyFastStreamsNoneCut(t *testing.T) {
	const events = `data: {"id":"s","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\ndata: [DONE]\n\n"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Respond before reading the request body.
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, events)
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	body := `{"model":"deepseek-chat","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("y", 8<<10) + `"}]}`
	const calls = 400
	for i := 0; i < calls; i++ {
		resp, err := client.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("call %d: body cut: %v", i, err)
		}
		if string(got) != events {
			t.Fatalf("call %d: body %q, want the full stream", i, got)
		}
	}
	records := sink.wait(t, calls)
	for i, rec := range records {
		if !rec.Success {
			t.Fatalf("record %d not a success: %q flags %v", i, rec.ErrorMessage, rec.Flags)
		}
	}
}

// A stream the upstream cuts midway reaches the client cut too (never as a
// clean end), and the record shows the call failed without usage.
func TestProxyUpstreamCutsStream(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"s","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"part"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer upstream.Close()
	upstream.Config.ErrorLog = discardLog()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	resp, err := http.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"deepseek-chat","stream":true,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("client read the cut stream as complete")
	}
	rec := sink.wait(t, 1)[0]
	if rec.Success || !rec.HasFlag(store.FlagUsageMissing) || rec.HasFlag(store.FlagClientAborted) {
		t.Errorf("record: success %v flags %v error %q", rec.Success, rec.Flags, rec.ErrorMessage)
	}
}

// A client that hangs up mid-stream leaves a record flagged
// client_aborted, and the upstream call is cancelled.
func TestProxyClientAbortsStream(t *testing.T) {
	upstreamDone := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"s","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"part"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(`{"model":"deepseek-chat","stream":true,"messages":[]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(resp.Body).ReadString('\n')
	cancel()
	resp.Body.Close()

	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Error("upstream call was not cancelled after the client left")
	}
	rec := sink.wait(t, 1)[0]
	if !rec.HasFlag(store.FlagClientAborted) || rec.Success {
		t.Errorf("record: success %v flags %v", rec.Success, rec.Flags)
	}
}

// A metered request body over the limit is answered 413 without reaching
// the upstream, and recorded.
func TestProxyRequestBodyTooLarge(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("oversized request reached the upstream")
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, func(c *Config) { c.MaxRequestBody = 1024 })

	resp, err := http.Post(srv.URL+"/chat/completions", "application/json", bytes.NewReader(bytes.Repeat([]byte("a"), 4096)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	rec := sink.wait(t, 1)[0]
	if rec.StatusCode != http.StatusRequestEntityTooLarge || rec.Success {
		t.Errorf("record: status %d success %v", rec.StatusCode, rec.Success)
	}
	// The proxy stopped reading at the limit, so the record must not
	// claim the limit as the body's size.
	if want := strings.Repeat("a", 1024) + "…[truncated, original size more than 1024 bytes]"; rec.RequestData != want {
		t.Errorf("request_data ends %q, want %q", tail(rec.RequestData, 60), tail(want, 60))
	}
	if !rec.HasFlag(store.FlagRequestTruncated) {
		t.Errorf("flags = %v, want request_truncated", rec.Flags)
	}
}

// TestProxyRequestBodyTooLargeClosesConnection sends oversized bodies
// over keep-alive connections. The 413 must close the connection, because
// the rest of the body is unread. Kept open, net/http read the next
// request while the full-duplex body read was pending and panicked with
// "invalid concurrent Body.Read call".
func TestProxyRequestBodyTooLargeClosesConnection(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("oversized request reached the upstream")
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	meter := metering.NewMeter(testPrices(t), newRecordSink(), nil, nil, metering.Options{})
	p, err := New(Config{Upstream: u, Meter: meter, MaxRequestBody: 1024})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var serverLog testlog.Buffer
	srv := httptest.NewUnstartedServer(p)
	srv.Config.ErrorLog = log.New(&serverLog, "", 0)
	srv.Start()
	defer srv.Close()

	for i := 0; i < 20; i++ {
		resp, err := http.Post(srv.URL+"/chat/completions", "application/json", bytes.NewReader(bytes.Repeat([]byte("a"), 4096)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
			t.Errorf("request %d: status %d, connection closed %v; want 413 and closed", i, resp.StatusCode, resp.Close)
		}
	}
	srv.Close()
	if got := serverLog.String(); strings.Contains(got, "panic") {
		t.Errorf("server log has a panic, want none:\n%s", got)
	}
}

// tail returns the last n bytes of s, or s when it is shorter.
func tail(s string, n int) string {
	return s[max(len(s)-n, 0):]
}

// Paths that are not metered pass through, bodies and all, and leave no
// record.
func TestProxyUnmeteredPassThrough(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"method":%q,"path":%q,"body":%q}`, r.Method, r.URL.Path, b)
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	cases := []struct{ method, path, body string }{
		{http.MethodGet, "/models", ""},
		{http.MethodGet, "/user/balance", ""},
		{http.MethodPut, "/some/new/path", "data"},
		{http.MethodGet, "/chat/completions", ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`{"method":%q,"path":%q,"body":%q}`, c.method, c.path, c.body)
		if string(b) != want {
			t.Errorf("%s %s: got %s, want %s", c.method, c.path, b, want)
		}
		if resp.Header.Get(RequestIDHeader) == "" {
			t.Errorf("%s %s: no request id", c.method, c.path)
		}
	}
	if n := sink.count(); n != 0 {
		t.Errorf("%d records for unmetered paths, want 0", n)
	}
}

// Attribution values are cut and cleaned before they are stored.
func TestCleanHeaderValue(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "user-1", "user-1"},
		{"trimmed", "  tab  ", "tab"},
		{"control characters dropped", "a\x00b\x1bc\x7f", "abc"},
		{"unicode kept", "страница", "страница"},
		{"cut to the limit", strings.Repeat("é", MaxAttributionLength+10), strings.Repeat("é", MaxAttributionLength)},
		{"invalid utf-8 dropped", "a\xffb", "ab"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := cleanHeaderValue(c.in); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	meter := metering.NewMeter(testPrices(t), newRecordSink(), nil, nil, metering.Options{})
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no upstream", Config{Meter: meter}},
		{"no host", Config{Upstream: &url.URL{Scheme: "http"}, Meter: meter}},
		{"ftp scheme", Config{Upstream: &url.URL{Scheme: "ftp", Host: "x"}, Meter: meter}},
		{"no meter", Config{Upstream: &url.URL{Scheme: "http", Host: "x"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(c.cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// Every way the upstream can be unreachable gets the client a 502 with an
// OpenAI-format error body naming the cause, and a record with that
// status, the cause and no cost: a closed port, a host name that cannot
// resolve (.invalid never does), a TLS certificate the proxy does not
// trust, and a connection reset before the head.
func TestProxyUpstreamUnreachableCauses(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tlsUpstream := httptest.NewTLSServer(standin.New(standin.Options{}))
	defer tlsUpstream.Close()
	tlsUpstream.Config.ErrorLog = discardLog()
	plainUpstream := httptest.NewServer(standin.New(standin.Options{}))
	defer plainUpstream.Close()

	// A .invalid name never resolves, so a resolver that follows RFC 6761
	// answers at once without the network.
	_, lookupErr := net.DefaultResolver.LookupHost(context.Background(), "nonexistent.invalid")

	tests := []struct {
		name     string
		upstream string
		fault    string
		want     string // in the client's error message and the record's
	}{
		{"connection refused", "http://" + closedAddr, "", "connecting to the upstream failed"},
		{"DNS failure", "http://nonexistent.invalid", "", "DNS lookup of the upstream host failed"},
		{"untrusted TLS certificate", tlsUpstream.URL, "", "the upstream's TLS certificate is not trusted"},
		// A reset reaches the proxy as a reset, a broken pipe or a closed
		// connection, depending on whether it was reading or writing, so
		// either sentence is right here. TestDescribeUpstreamError checks
		// each mapping.
		{"reset before the head", plainUpstream.URL, "reset=1", "the connection before sending a response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "DNS failure" && lookupErr == nil {
				t.Skip("the resolver here resolves nonexistent.invalid, so the DNS failure case cannot run")
			}
			srv, sink := newTestProxy(t, tt.upstream, nil)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer sk-test0000000000000000")
			if tt.fault != "" {
				req.Header.Set(standin.FaultHeader, tt.fault)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want 502", resp.StatusCode)
			}
			var envelope struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Code    string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &envelope); err != nil || !strings.Contains(envelope.Error.Message, tt.want) || envelope.Error.Code != "bad_gateway" {
				t.Errorf("error body %s (%v), want an OpenAI-format error containing %q", body, err, tt.want)
			}

			rec := sink.wait(t, 1)[0]
			if rec.StatusCode != http.StatusBadGateway || rec.Success || rec.Cost != 0 || rec.UsageSource != store.UsageNone {
				t.Errorf("record status %d success %v cost %s usage %q, want 502 false 0 none", rec.StatusCode, rec.Success, rec.Cost, rec.UsageSource)
			}
			if rec.ErrorMessage == "" || rec.RequestData != chatBody {
				t.Errorf("record error %q request %q, want the cause and the request", rec.ErrorMessage, rec.RequestData)
			}
		})
	}
}

// A caller can keep one sensitive call's bodies out of its record with
// X-DeepMeter-Store-Bodies: none. The header must not reach the upstream,
// and the record must keep its tokens and cost.
func TestProxyStoreBodiesNoneHeader(t *testing.T) {
	var upstreamSaw string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamSaw = r.Header.Get(StoreBodiesHeader)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, chatResponse)
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(chatBody))
	req.Header.Set(StoreBodiesHeader, "None")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	if upstreamSaw != "" {
		t.Errorf("upstream got %s: %q, want the header removed", StoreBodiesHeader, upstreamSaw)
	}
	rec := sink.wait(t, 1)[0]
	if rec.RequestData != "" || rec.ResponseData != "" || rec.Message != "N/A" {
		t.Errorf("request_data, response_data, message = %q, %q, %q; want empty, empty, N/A", rec.RequestData, rec.ResponseData, rec.Message)
	}
	if rec.PromptTokens != 1500 || !rec.Priced {
		t.Errorf("prompt tokens, priced = %d, %v; want 1500, true", rec.PromptTokens, rec.Priced)
	}
}

// A keep-alive client that sends an oversized body, far larger than what
// the proxy reads, must get the 413 and be able to send its next call on
// a new connection. The proxy closes the connection, because the unread
// body makes it unusable and net/http would otherwise panic on it.
func TestProxyBodyTooLargeKeepAlive(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, chatResponse)
	}))
	defer upstream.Close()
	srv, _ := newTestProxy(t, upstream.URL, func(c *Config) { c.MaxRequestBody = 1024 })
	client := srv.Client()

	bodies := []struct {
		name       string
		body       []byte
		wantStatus int
	}{
		{"warm-up call", []byte(chatBody), http.StatusOK},
		{"oversized", bytes.Repeat([]byte("a"), 200_000), http.StatusRequestEntityTooLarge},
		{"next call", []byte(chatBody), http.StatusOK},
	}
	for _, b := range bodies {
		resp, err := client.Post(srv.URL+"/chat/completions", "application/json", bytes.NewReader(b.body))
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != b.wantStatus {
			t.Errorf("%s: status %d, want %d", b.name, resp.StatusCode, b.wantStatus)
		}
		if b.wantStatus == http.StatusRequestEntityTooLarge && !resp.Close {
			t.Errorf("%s: connection kept open, want Connection: close", b.name)
		}
	}
}

// TestDescribeUpstreamError maps transport errors to sentences without the
// raw error text, which names the proxy's own addresses, and falls back to
// a generic sentence for an error it does not know.
func TestDescribeUpstreamError(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 56444}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 19090}
	opErr := func(op string, err error) error {
		return &net.OpError{Op: op, Net: "tcp", Source: local, Addr: remote, Err: err}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"write on closed connection", opErr("readfrom", opErr("write", net.ErrClosed)),
			"the upstream closed the connection before sending a response"},
		{"broken pipe", opErr("write", os.NewSyscallError("write", syscall.EPIPE)),
			"the upstream closed the connection before sending a response"},
		{"reset", opErr("read", os.NewSyscallError("read", syscall.ECONNRESET)),
			"the upstream reset the connection before sending a response"},
		{"refused", opErr("dial", os.NewSyscallError("connect", syscall.ECONNREFUSED)),
			"connecting to the upstream failed: connection refused"},
		{"other dial error", opErr("dial", errors.New("socket: too many open files")),
			"connecting to the upstream failed"},
		{"other connection error", opErr("read", errors.New("no buffer space available at 127.0.0.1:56444")),
			"the connection to the upstream failed"},
		{"DNS failure", &net.DNSError{Err: "no such host", Name: "api.example.invalid", Server: "127.0.0.53:53", IsNotFound: true},
			"DNS lookup of the upstream host failed: api.example.invalid: no such host"},
		{"unknown error", fmt.Errorf("proxy state at 127.0.0.1:56444: %w", errors.New("odd")),
			"the upstream request failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describeUpstreamError(tt.err)
			if got != tt.want {
				t.Errorf("describeUpstreamError(%q) = %q, want %q", tt.err, got, tt.want)
			}
			if strings.Contains(got, "127.0.0") {
				t.Errorf("describeUpstreamError(%q) = %q, want no address", tt.err, got)
			}
		})
	}
}

// The body opt-out header is a privacy control, so a misspelled value or a
// repeated header that includes "none" must still keep the bodies out.
func TestOptsOutOfBodies(t *testing.T) {
	cases := []struct {
		name   string
		values []string
		want   bool
	}{
		{"absent", nil, false},
		{"none", []string{"none"}, true},
		{"none any case", []string{" NoNe "}, true},
		{"full", []string{"full"}, false},
		{"misspelled", []string{"nnoe"}, true},
		{"empty value", []string{""}, true},
		{"repeated full then none", []string{"full", "none"}, true},
		{"list none and full", []string{"none, full"}, true},
		{"list of full", []string{"full, FULL"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := optsOutOfBodies(c.values); got != c.want {
				t.Errorf("optsOutOfBodies(%q) = %v, want %v", c.values, got, c.want)
			}
		})
	}
}

// Many small headers stay under the server's byte limit but still cost
// memory and work per header, so past MaxRequestHeaders the proxy answers
// 431 without forwarding or recording the call.
func TestProxyTooManyHeaders(t *testing.T) {
	var forwarded atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded.Add(1)
		io.WriteString(w, chatResponse)
	}))
	defer upstream.Close()
	srv, sink := newTestProxy(t, upstream.URL, nil)

	cases := []struct {
		headers    int
		wantStatus int
	}{
		{MaxRequestHeaders - 10, http.StatusOK},
		{MaxRequestHeaders + 1, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(chatBody))
		for i := 0; i < c.headers; i++ {
			req.Header.Add(fmt.Sprintf("X-Filler-%d", i%50), "v")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.wantStatus {
			t.Errorf("%d extra headers: status %d, want %d", c.headers, resp.StatusCode, c.wantStatus)
		}
	}
	if got := forwarded.Load(); got != 1 {
		t.Errorf("%d calls forwarded, want only the one under the limit", got)
	}
	if got := len(sink.wait(t, 1)); got != 1 {
		t.Errorf("%d records, want only the forwarded call's", got)
	}
}
