package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepmeter/deepmeter/admin"
	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/metering"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/store"
)

// callTime pins the clock of every stack: DeepSeek's built-in prices on that
// day are 0.028 / 0.28 / 0.42 USD per 1M tokens (hit / miss / output).
var callTime = time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC)

// Per-token rates in Money units at callTime.
const (
	rateHit    = 28_000
	rateMiss   = 280_000
	rateOutput = 420_000
)

const adminToken = "e2e-admin-token-0123456789abcdef"

// stack is the whole product wired as `deepmeter serve` wires it: the
// stand-in as upstream, the proxy, the batch writer, a real store and the
// admin API, each on its own loopback server.
type stack struct {
	upstream *httptest.Server
	proxy    *httptest.Server
	admin    *httptest.Server
	store    store.Store
	writer   *metering.Writer
	metrics  *prometheus.Registry // the meter's metrics
}

// stackOptions change the proxy and meter settings of a stack; zero
// values keep the defaults.
type stackOptions struct {
	maxStoredBody int
	idleTimeout   time.Duration
	drain         bool
	upstream      http.Handler // replaces the stand-in when set
}

func newStack(t *testing.T, databaseURL string) *stack {
	t.Helper()
	return newStackWith(t, databaseURL, stackOptions{})
}

func newStackWith(t *testing.T, databaseURL string, opts stackOptions) *stack {
	t.Helper()
	ctx := context.Background()
	if err := store.Migrate(ctx, databaseURL); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })

	s := &stack{store: st, metrics: prometheus.NewRegistry()}
	var upstream http.Handler = standin.New(standin.Options{})
	if opts.upstream != nil {
		upstream = opts.upstream
	}
	s.upstream = httptest.NewServer(upstream)
	t.Cleanup(s.upstream.Close)

	s.writer = metering.NewWriter(st, metering.WriterOptions{FlushInterval: 20 * time.Millisecond}, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.writer.Run(context.Background())
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.writer.Close(ctx); err != nil {
			t.Errorf("close writer: %v", err)
		}
		<-done
	})

	now := func() time.Time { return callTime }
	meter := metering.NewMeter(pricing.Builtin(), s.writer, nil, s.metrics, metering.Options{Now: now, MaxStoredBody: opts.maxStoredBody})
	upstreamURL, _ := url.Parse(s.upstream.URL)
	px, err := proxy.New(proxy.Config{
		Upstream: upstreamURL, Meter: meter, Now: now,
		IdleTimeout: opts.idleTimeout, DrainOnClientAbort: opts.drain,
	})
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	s.proxy = httptest.NewServer(px)
	t.Cleanup(s.proxy.Close)

	adminHandler, err := admin.New(admin.Config{Store: st, Tokens: []string{adminToken}, Now: now, DailyLimit: 1_000_000_000_000})
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	s.admin = httptest.NewServer(adminHandler)
	t.Cleanup(s.admin.Close)
	return s
}

// waitRecords polls the store until n records are stored and returns them
// with their bodies, newest first.
func (s *stack) waitRecords(t *testing.T, n int) []store.Record {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, total, err := s.store.List(ctx, store.ListQuery{Since: callTime.Add(-time.Hour), Limit: n + 10})
		if err != nil {
			t.Fatalf("list records: %v", err)
		}
		if int(total) >= n {
			if int(total) > n {
				t.Fatalf("%d records stored, want %d", total, n)
			}
			out := make([]store.Record, 0, n)
			for _, r := range page {
				full, err := s.store.Record(ctx, r.ID)
				if err != nil {
					t.Fatalf("read record %s: %v", r.ID, err)
				}
				out = append(out, full)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records stored after 10s, want %d", total, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordByID returns the stored record with id.
func (s *stack) recordByID(t *testing.T, id string) store.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := s.store.Record(context.Background(), id)
		if err == nil {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s not stored after 10s: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// headerTransport adds fixed headers to every request, the way a service
// owner adds attribution headers to its client.
type headerTransport struct {
	header http.Header
	base   http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return h.base.RoundTrip(r)
}

// forEachStore runs f on a fresh SQLite file and, when configured, on a fresh
// Postgres schema.
func forEachStore(t *testing.T, f func(t *testing.T, databaseURL string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, testdb.SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, testdb.PostgresURL(t)) })
}
