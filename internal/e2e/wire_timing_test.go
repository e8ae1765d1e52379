package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/store"
)

// wireIdle is the idle timeout of the timing tests: long enough for a
// loaded machine to pass the stand-in's bytes on, short enough to keep the
// tests fast.
const wireIdle = 400 * time.Millisecond

// TestWireIdleTimeout ends calls whose upstream stops making payload
// progress. Keep-alive comments and blank lines do not count, so a stream
// that only sends keep-alives after its last chunk ends instead of
// hanging. Before the head the client gets a 504, and after it the
// response is cut. Chunks that keep coming, each within the timeout, are
// never cut.
func TestWireIdleTimeout(t *testing.T) {
	s := newStackWith(t, testdb.SQLiteURL(t), stackOptions{idleTimeout: wireIdle})
	tests := []struct {
		name        string
		body        string
		fault       string // through the proxy
		directFault string // the same bytes directly, ending by themselves
		wantStatus  int
		wantSuccess bool
		wantFlags   []string
		wantUsage   wantUsage
		wantError   string
	}{
		{name: "no head in time", body: wireChat, fault: "delay=1500", wantStatus: 504, wantUsage: usageNone,
			wantFlags: []string{store.FlagTimedOut}, wantError: "upstream timed out"},
		{name: "blank lines only", body: wireChat, fault: "keepalive=30,keepalive_delay=50", directFault: "keepalive=30,keepalive_delay=50",
			wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagTimedOut, store.FlagUsageMissing}, wantError: "upstream timed out"},
		{name: "keep-alive comments after the last chunk", body: wireChatStream, fault: "trailing_keepalive=30,keepalive_delay=50",
			directFault: "trailing_keepalive=30,keepalive_delay=50,hang=1", wantStatus: 200, wantUsage: usageReported,
			wantFlags: []string{store.FlagTimedOut}, wantError: "upstream timed out"},
		{name: "data keep-alives before content", body: wireChatStream, fault: "data_keepalive=30,keepalive_delay=50",
			directFault: "data_keepalive=30,keepalive_delay=50", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagTimedOut, store.FlagUsageMissing}, wantError: "upstream timed out"},
		{name: "slow chunks keep the call alive", body: wireChatStream, fault: "chunk_delay=150,words=8", directFault: "chunk_delay=150,words=8",
			wantStatus: 200, wantSuccess: true, wantUsage: usageReported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxied := send(t, rawClient, s.proxy.URL, "/chat/completions", tt.body, map[string]string{standin.FaultHeader: tt.fault})
			if proxied.status != tt.wantStatus {
				t.Errorf("status %d, want %d", proxied.status, tt.wantStatus)
			}
			var direct exchange
			if tt.directFault != "" {
				direct = send(t, rawClient, s.upstream.URL, "/chat/completions", tt.body, map[string]string{standin.FaultHeader: tt.directFault})
				if !bytes.HasPrefix(direct.body, proxied.body) {
					t.Errorf("body through the proxy is not a prefix of the direct body:\n got %.300q\nwant %.300q", proxied.body, direct.body)
				}
				if cut := tt.wantStatus == 200 && !tt.wantSuccess; cut && proxied.readErr == nil {
					t.Error("the client read the timed-out response as complete")
				}
			} else {
				checkProxyError(t, proxied, "upstream request timed out")
			}

			rec := s.recordByID(t, proxied.header.Get(proxy.RequestIDHeader))
			if rec.StatusCode != tt.wantStatus || rec.Success != tt.wantSuccess {
				t.Errorf("record status %d success %v, want %d %v", rec.StatusCode, rec.Success, tt.wantStatus, tt.wantSuccess)
			}
			if got, want := strings.Join(rec.Flags, ","), strings.Join(sorted(tt.wantFlags), ","); got != want {
				t.Errorf("record flags %q, want %q", got, want)
			}
			if rec.ErrorMessage != tt.wantError {
				t.Errorf("record error %q, want %q", rec.ErrorMessage, tt.wantError)
			}
			checkUsage(t, s, tt.wantUsage, rec, direct, "/chat/completions", tt.body, nil)
		})
	}
}

// checkProxyError fails unless ex is an OpenAI-format error the proxy
// wrote, with a message that contains want.
func checkProxyError(t *testing.T, ex exchange, want string) {
	t.Helper()
	var envelope struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(ex.body, &envelope); err != nil {
		t.Fatalf("error body %q is not JSON: %v", ex.body, err)
	}
	if !strings.Contains(envelope.Error.Message, want) || envelope.Error.Type == "" || envelope.Error.Code == "" {
		t.Errorf("error body %s, want an OpenAI-format error whose message contains %q", ex.body, want)
	}
	if ct := ex.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
}

// TestWireClientAbort hangs up mid-stream and just before the final chunk,
// which carries the usage. By default the upstream call is cancelled and
// the usage estimated from what was forwarded. With drain the proxy reads
// the rest, so the record has the stand-in's exact usage, and an upstream
// that then holds the connection is still ended by the idle timeout.
// Either way the record is flagged client_aborted. A client that leaves
// before the head gets a 499 record with no usage.
func TestWireClientAbort(t *testing.T) {
	const (
		slow      = "chunk_delay=60,words=30"
		slowFinal = "chunk_delay=200,words=8" // time to leave before the final chunk
	)
	aborted := []string{store.FlagClientAborted, store.FlagUsageMissing}
	tests := []struct {
		name       string
		drain      bool
		anthropic  bool
		fault      string
		words      string // the same answer without delays
		leaveAfter int    // data events read; 0 means all but the final chunk and [DONE]
		wantUsage  wantUsage
		wantFlags  []string
		wantError  string
	}{
		{"cancel mid-stream", false, false, slow, "words=30", 2, usageEstimated, aborted, msgClientAborted},
		{"cancel before the final chunk", false, false, slowFinal, "words=8", 0, usageEstimated, aborted, msgClientAborted},
		{"drain mid-stream", true, false, slow, "words=30", 2, usageReported, []string{store.FlagClientAborted}, msgClientAborted},
		{"drain before the final chunk", true, false, slowFinal, "words=8", 0, usageReported, []string{store.FlagClientAborted}, msgClientAborted},
		{"drain Anthropic mid-stream", true, true, slow, "words=30", 2, usageReported, []string{store.FlagClientAborted}, msgClientAborted},
		{"drain ended by the idle timeout", true, false, slow + ",trailing_keepalive=2", "words=30", 2, usageReported,
			[]string{store.FlagClientAborted, store.FlagTimedOut}, "upstream timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStackWith(t, testdb.SQLiteURL(t), stackOptions{drain: tt.drain, idleTimeout: wireIdle})
			path, body, header := "/chat/completions", wireChatStream, map[string]string{}
			if tt.anthropic {
				path, body = "/anthropic/v1/messages", wireAnthStream
				header = map[string]string{"Authorization": "", "x-api-key": apiKey}
			}
			header[standin.FaultHeader] = tt.words
			direct := send(t, rawClient, s.upstream.URL, path, body, header)
			leaveAfter := tt.leaveAfter
			if leaveAfter == 0 {
				leaveAfter = bytes.Count(direct.body, []byte("\ndata:")) + 1 - 2
			}

			header[standin.FaultHeader] = tt.fault
			id := readEventsAndLeave(t, s.proxy.URL+path, body, header, leaveAfter)
			rec := s.recordByID(t, id)
			if rec.Success || rec.StatusCode != 200 {
				t.Errorf("record success %v status %d, want false, 200", rec.Success, rec.StatusCode)
			}
			if got, want := strings.Join(rec.Flags, ","), strings.Join(sorted(tt.wantFlags), ","); got != want {
				t.Errorf("record flags %q, want %q", got, want)
			}
			if rec.ErrorMessage != tt.wantError {
				t.Errorf("record error %q, want %q", rec.ErrorMessage, tt.wantError)
			}
			header[standin.FaultHeader] = tt.words
			checkUsage(t, s, tt.wantUsage, rec, direct, path, body, header)
		})
	}

	t.Run("before the head", func(t *testing.T) {
		s := newStack(t, testdb.SQLiteURL(t))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.proxy.URL+"/chat/completions", strings.NewReader(wireChat))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set(standin.FaultHeader, "delay=1000")
		if resp, err := rawClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("status %d, want the client's own timeout", resp.StatusCode)
		}
		rec := s.waitRecords(t, 1)[0]
		if !rec.HasFlag(store.FlagClientAborted) || rec.StatusCode != proxy.StatusClientClosedRequest || rec.UsageSource != store.UsageNone || rec.Cost != 0 {
			t.Errorf("record flags %v status %d usage %q cost %s, want client_aborted 499 none 0", rec.Flags, rec.StatusCode, rec.UsageSource, rec.Cost)
		}
	})
}

// msgClientAborted is the error of a record whose client left.
const msgClientAborted = "client closed the connection before the response ended"

// readEventsAndLeave starts a stream, reads n data events and closes the
// connection. It returns the record id.
func readEventsAndLeave(t *testing.T, url, body string, header map[string]string, n int) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for events := 0; events < n; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %d events: %v", events, err)
		}
		if strings.HasPrefix(line, "data:") {
			events++
		}
	}
	resp.Body.Close()
	client.CloseIdleConnections()
	return resp.Header.Get(proxy.RequestIDHeader)
}

// TestWireRequestBodies sends request bodies as clients do besides a
// plain Content-Length: chunked, with Expect: 100-continue, and both.
// The stand-in answers as it does directly and the record is complete.
func TestWireRequestBodies(t *testing.T) {
	s := newStack(t, testdb.SQLiteURL(t))
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, ExpectContinueTimeout: 5 * time.Second}}
	tests := []struct {
		name     string
		chunked  bool
		expect   bool
		splitLen int
	}{
		{"chunked", true, false, 7},
		{"expect 100-continue", false, true, 0},
		{"chunked with expect 100-continue", true, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]exchange
			for i, base := range []string{s.upstream.URL, s.proxy.URL} {
				var body io.Reader = strings.NewReader(wireChatStream)
				if tt.chunked {
					body = &trickleReader{data: []byte(wireChatStream), n: tt.splitLen}
				}
				req, _ := http.NewRequest(http.MethodPost, base+"/chat/completions", body)
				req.Header.Set("Authorization", "Bearer "+apiKey)
				req.Header.Set("Content-Type", "application/json")
				if tt.expect {
					req.Header.Set("Expect", "100-continue")
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, readErr := io.ReadAll(resp.Body)
				resp.Body.Close()
				got[i] = exchange{status: resp.StatusCode, header: resp.Header, body: b, readErr: readErr}
			}
			sameExchange(t, got[0], got[1])
			rec := s.recordByID(t, got[1].header.Get(proxy.RequestIDHeader))
			if !rec.Success || rec.RequestData != wireChatStream {
				t.Errorf("record success %v (%q), request data %q; want true and the whole body", rec.Success, rec.ErrorMessage, rec.RequestData)
			}
			checkUsage(t, s, usageReported, rec, got[0], "/chat/completions", wireChatStream, nil)
		})
	}
}

// trickleReader returns its data n bytes per Read and hides its length,
// so net/http sends it chunked.
type trickleReader struct {
	data []byte
	n    int
}

func (r *trickleReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), max(r.n, 1))], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestWireHTTP2 runs the proxy over TLS with HTTP/2, as `deepmeter serve`
// does when given a certificate, and streams through it with an HTTP/2
// client that trusts only the test certificate. Events arrive as they do
// directly and the call is recorded.
func TestWireHTTP2(t *testing.T) {
	s := newStack(t, testdb.SQLiteURL(t))
	h2 := httptest.NewUnstartedServer(s.proxy.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)

	transport := h2.Client().Transport.(*http.Transport).Clone()
	transport.ForceAttemptHTTP2 = true
	transport.DisableCompression = true
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	for _, tt := range []struct{ name, body, fault string }{
		{"stream", wireChatStream, ""},
		{"stream split", wireChatStream, "split=1"},
		{"JSON", wireChat, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			header := map[string]string{}
			if tt.fault != "" {
				header[standin.FaultHeader] = tt.fault
			}
			direct := send(t, rawClient, s.upstream.URL, "/chat/completions", tt.body, header)

			req, _ := http.NewRequest(http.MethodPost, h2.URL+"/chat/completions", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+apiKey)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
				t.Errorf("protocol %s (TLS %v), want HTTP/2 over TLS", resp.Proto, resp.TLS != nil)
			}
			proxied := exchange{status: resp.StatusCode, header: resp.Header, body: b, readErr: readErr}
			// HTTP/2 sends no Content-Length for a streamed body either way,
			// so compare the rest.
			proxied.header.Del("Content-Length")
			direct.header.Del("Content-Length")
			sameExchange(t, direct, proxied)

			rec := s.recordByID(t, resp.Header.Get(proxy.RequestIDHeader))
			if !rec.Success {
				t.Errorf("record not a success: %q flags %v", rec.ErrorMessage, rec.Flags)
			}
			checkUsage(t, s, usageReported, rec, direct, "/chat/completions", tt.body, nil)
		})
	}
}

// TestWireEstimatedCostInStats sends one whole call and one cut stream:
// the admin stats count the cut call as estimated and report its cost as
// the estimated part of the total, so an operator sees how much of the
// spend is a guess.
func TestWireEstimatedCostInStats(t *testing.T) {
	s := newStack(t, testdb.SQLiteURL(t))
	whole := send(t, rawClient, s.proxy.URL, "/chat/completions", wireChat, nil)
	cut := send(t, rawClient, s.proxy.URL, "/chat/completions", wireChatStream, map[string]string{standin.FaultHeader: "cut_after=3"})
	reported := s.recordByID(t, whole.header.Get(proxy.RequestIDHeader))
	estimated := s.recordByID(t, cut.header.Get(proxy.RequestIDHeader))
	if reported.UsageSource != store.UsageReported || estimated.UsageSource != store.UsageEstimated {
		t.Fatalf("usage sources %q and %q, want reported and estimated", reported.UsageSource, estimated.UsageSource)
	}

	req, _ := http.NewRequest(http.MethodGet, s.admin.URL+"/api/admin/api-usage/stats?days=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Data struct {
			TotalCost      json.Number `json:"total_cost"`
			EstimatedCost  json.Number `json:"estimated_cost"`
			EstimatedCalls int64       `json:"estimated_calls"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("stats: %v", err)
	}
	if answer.Data.EstimatedCalls != 1 {
		t.Errorf("estimated_calls %d, want 1", answer.Data.EstimatedCalls)
	}
	if got, want := answer.Data.EstimatedCost.String(), estimated.Cost.String(); got != want {
		t.Errorf("estimated_cost %s, want the cut call's %s", got, want)
	}
	if got, want := answer.Data.TotalCost.String(), (reported.Cost + estimated.Cost).String(); got != want {
		t.Errorf("total_cost %s, want %s", got, want)
	}
}
