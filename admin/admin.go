// Package admin serves deepmeter's admin HTTP API: usage statistics, spend
// against a daily limit, the account balance and the stored records under
// /api/admin/api-usage, plus /healthz, /readyz, /metrics and a web
// dashboard at /dashboard/ (and / redirects there). The dashboard is a static
// page that reads the API with a token the user enters.
//
// The API only reads the store, except POST /api/admin/api-usage/balance
// and POST /api/admin/api-usage/daily-limit, which replace the balance or
// the daily limit and add an entry to the audit listed at GET
// /api/admin/audit. Every route under /api/admin needs a bearer token from
// Config.Tokens or Config.RoleTokens, and with no token configured those
// routes return 401. A RoleRead token gets 403 on every method but GET,
// HEAD and OPTIONS. An address with repeated failed token checks gets 429
// for the rest of a one-minute window. The health routes and /metrics
// need no token.
//
// API responses are JSON envelopes, {"success":true,"data":...} or
// {"success":false,"error":"..."}. Money is written as an exact JSON number
// of currency units formatted from the stored integer, never through
// float64, and every time is UTC in RFC 3339.
//
// The handler returned by New is safe for concurrent use.
package admin

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// Config configures the admin handler. Only Store is required.
type Config struct {
	// Store is read by every API route. POST .../balance also writes it.
	Store store.Store

	// Tokens are accepted bearer tokens with RoleAdmin. The first is
	// named DefaultTokenName, later ones "default-2" and so on. With no
	// token here or in RoleTokens, every route under /api/admin returns
	// 401 with a message on how to set a token.
	Tokens []string

	// RoleTokens are accepted bearer tokens with a name and a role, such
	// as those of ParseTokens. Names and secrets must be unique across
	// Tokens and RoleTokens.
	RoleTokens []Token

	// AuthFailureLimit is how many failed token checks one client address
	// may make in a minute before its requests get 429 until the minute
	// ends. Zero means 10.
	AuthFailureLimit int

	// CORSOrigin is the one browser origin, such as
	// https://dash.example.com, allowed to call the API from a page. Empty
	// means no CORS headers are ever sent.
	CORSOrigin string

	// DailyLimit is the spend allowed per UTC day in Currency until one is
	// set through POST .../daily-limit, which replaces it. Zero means no
	// limit.
	DailyLimit pricing.Money

	// Currency is the currency of DailyLimit, of a balance set through the
	// API and of the single-currency totals in responses. Default "USD".
	Currency string

	// Gatherer is served on /metrics. Nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer

	// Ready is an extra readiness check run by /readyz after Store.Ping,
	// under the same 2 s timeout. Nil means none. Its error message is
	// returned to unauthenticated clients in the 503 body, so it must not
	// contain secrets.
	Ready func(ctx context.Context) error

	// DatabaseOptional keeps /readyz at 200 while the database does not
	// answer, as long as Ready passes. Set it when records go to a spool
	// during an outage, so a load balancer keeps sending calls that are
	// still recorded. The body reports the database as unreachable.
	DatabaseOptional bool

	// Logger receives errors and auth failures. Nil discards them. Tokens
	// are never logged.
	Logger *slog.Logger

	// Now is the clock for day, month and balance windows. Nil means
	// time.Now.
	Now func() time.Time

	// Registerer receives the admin's own metrics. Nil registers nothing.
	Registerer prometheus.Registerer
}

const (
	// apiPrefix is the path prefix of every route that needs a token.
	apiPrefix = "/api/admin"
	// usagePrefix is the prefix of the usage and balance routes.
	usagePrefix = apiPrefix + "/api-usage"

	// readyTimeout bounds the whole /readyz check.
	readyTimeout = 2 * time.Second

	// queryTimeout bounds the store calls of one API request, so a slow
	// query over a long window cannot hold a connection forever.
	queryTimeout = 30 * time.Second

	// minTokenLength is the token length below which New logs a warning.
	minTokenLength = 16
)

// server is the handler New returns.
type server struct {
	store      store.Store
	currency   string
	dailyLimit pricing.Money
	ready      func(ctx context.Context) error
	dbOptional bool
	log        *slog.Logger
	now        func() time.Time

	tokens       []tokenEntry
	throttle     *throttle
	authFailures *prometheus.CounterVec
	corsOrigin   string

	router *mux.Router

	// unready is true after a failed /readyz check, so only changes of
	// readiness are logged above Debug.
	unready atomic.Bool
}

// New returns the admin HTTP handler. It returns an error when cfg has no
// Store, a blank or space-padded token, a negative DailyLimit, an invalid
// Currency, or when registering the metrics fails.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin: Config.Store is nil")
	}
	if cfg.DailyLimit < 0 {
		return nil, fmt.Errorf("admin: daily limit %s is negative: use 0 for no limit", cfg.DailyLimit)
	}

	s := &server{
		store:      cfg.Store,
		currency:   cfg.Currency,
		dailyLimit: cfg.DailyLimit,
		ready:      cfg.Ready,
		dbOptional: cfg.DatabaseOptional,
		log:        cfg.Logger,
		now:        cfg.Now,
		corsOrigin: cfg.CORSOrigin,
	}
	if s.currency == "" {
		s.currency = "USD"
	}
	if !validCurrency(s.currency) {
		return nil, fmt.Errorf("admin: invalid currency %q: expected a 3-letter upper-case code such as USD or CNY", s.currency)
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}

	if err := s.addTokens(cfg.Tokens, cfg.RoleTokens); err != nil {
		return nil, err
	}
	if len(s.tokens) == 0 {
		s.log.Warn("admin API disabled: no admin token is set, so every route under it returns 401; set one with --admin-token or --admin-tokens-file", "path_prefix", apiPrefix)
	}
	s.throttle = newThrottle(s.now)
	if cfg.AuthFailureLimit > 0 {
		s.throttle.limit = cfg.AuthFailureLimit
	}

	failures, err := newAuthFailures(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.authFailures = failures

	gatherer := cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	s.router = s.routes(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	}))
	return s, nil
}

// routes builds the router. Routes are registered with full paths rather
// than a subrouter so that 404 and 405 come from one place.
func (s *server) routes(metrics http.Handler) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)

	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", metrics).Methods(http.MethodGet, http.MethodHead)

	r.Handle("/", http.RedirectHandler(dashboardPath, http.StatusFound)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(dashboardPath).Handler(dashboard()).Methods(http.MethodGet, http.MethodHead)

	// HEAD is allowed wherever GET is, as HTTP expects. net/http drops
	// the body of a HEAD response.
	r.HandleFunc(usagePrefix+"/stats", s.getStats).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(usagePrefix+"/daily-limit", s.getDailyLimit).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(usagePrefix+"/daily-limit", s.setDailyLimit).Methods(http.MethodPost)
	r.HandleFunc(usagePrefix+"/current-month", s.getCurrentMonth).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(usagePrefix+"/balance", s.getBalance).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(usagePrefix+"/balance", s.setBalance).Methods(http.MethodPost)
	r.HandleFunc(usagePrefix+"/records", s.listRecords).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(usagePrefix+"/records/{id}", s.getRecord).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(apiPrefix+"/audit", s.listAudit).Methods(http.MethodGet, http.MethodHead)
	addPprofRoutes(r)
	return r
}

// ServeHTTP checks the token before routing, so a client without one learns
// nothing about which routes or methods exist under the prefix.
// A browser's CORS preflight carries no token, so it is answered first.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if needsToken(r.URL.Path) {
		if s.handleCORS(w, r) {
			return
		}
		token, ok := s.authorize(w, r)
		if !ok {
			return
		}
		if token.role != RoleAdmin && (underPprof(r.URL.Path) || underPprof(path.Clean(r.URL.Path))) {
			// Profiles hold memory contents, secrets included, so they are
			// for admin tokens only.
			s.log.Warn("profile request rejected: the token has role read", "token_name", token.name, "path", r.URL.Path, "remote_addr", clientAddress(r.RemoteAddr))
			writeJSON(w, http.StatusForbidden, envelope{Success: false, Error: fmt.Sprintf("token %q has role read: profiles need a token with role admin", token.name)})
			return
		}
		if !mayChange(r.Method, token.role) {
			s.log.Warn("admin change rejected: the token has role read", "token_name", token.name, "method", r.Method, "path", r.URL.Path, "remote_addr", clientAddress(r.RemoteAddr))
			writeJSON(w, http.StatusForbidden, envelope{Success: false, Error: fmt.Sprintf("token %q has role read: changes need a token with role admin", token.name)})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, token.name))
	}
	s.router.ServeHTTP(w, r)
}

// addTokens validates and keeps the accepted tokens.
func (s *server) addTokens(plain []string, named []Token) error {
	all := make([]Token, 0, len(plain)+len(named))
	for i, secret := range plain {
		if strings.TrimSpace(secret) == "" {
			return fmt.Errorf("admin: admin token %d is empty", i)
		}
		if strings.TrimSpace(secret) != secret {
			return fmt.Errorf("admin: admin token %d has leading or trailing whitespace", i)
		}
		if len(secret) < minTokenLength {
			s.log.Warn("admin token is short: use at least 16 random characters", "token_index", i, "min_length", minTokenLength)
		}
		name := DefaultTokenName
		if i > 0 {
			name = fmt.Sprintf("%s-%d", DefaultTokenName, i+1)
		}
		all = append(all, Token{Name: name, Role: RoleAdmin, Secret: secret})
	}
	for _, t := range named {
		if err := checkToken(t); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		all = append(all, t)
	}

	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]bool{}
	for _, t := range all {
		hash := sha256.Sum256([]byte(t.Secret))
		if names[t.Name] {
			return fmt.Errorf("admin: token name %q is used twice", t.Name)
		}
		if hashes[hash] {
			return fmt.Errorf("admin: token %q has the same secret as another token", t.Name)
		}
		names[t.Name], hashes[hash] = true, true
		s.tokens = append(s.tokens, tokenEntry{hash: hash, name: t.Name, role: t.Role})
	}
	return nil
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusNotFound, "not found: no route for "+r.URL.Path)
}

// methodNotAllowed returns 405 with the Allow header that RFC 9110 requires,
// found by matching the path with each method in turn.
func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = method
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, method)
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	s.writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks the store and then Config.Ready. A failed store ping is
// reported with a fixed reason, because a driver error can name hosts or
// users. The full error goes to the log.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()

	database := "ok"
	var reason string
	err := s.store.Ping(ctx)
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		reason = "database ping timed out after " + readyTimeout.String()
	case err != nil:
		reason = "database ping failed"
	}
	if err != nil && s.dbOptional {
		// Records wait in the spool, so calls can still be served.
		s.log.Debug("database unreachable, serving with the spool", "reason", reason, "err", err)
		database, reason, err = "unreachable: "+reason, "", nil
	}
	if err == nil && s.ready != nil {
		if err = s.ready(ctx); err != nil {
			reason = "not ready: " + err.Error()
		}
	}

	if err != nil {
		if !s.unready.Swap(true) {
			s.log.Warn("readiness check failed", "reason", reason, "err", err)
		} else {
			s.log.Debug("readiness check failed", "reason", reason, "err", err)
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": reason, "database": database})
		return
	}
	if s.unready.Swap(false) {
		s.log.Info("readiness check passed again")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "database": database})
}

// validCurrency reports whether c looks like an ISO 4217 code.
func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}
