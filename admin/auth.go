package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the reason label of deepmeter_admin_auth_failures_total.
const (
	reasonMissing   = "missing"   // no Authorization header with a Bearer token
	reasonInvalid   = "invalid"   // a token that matches no configured token
	reasonDisabled  = "disabled"  // no token is configured
	reasonThrottled = "throttled" // 429: too many recent failures from the address
)

const (
	errMsgBadToken = "missing or invalid admin token"
	errMsgDisabled = "admin API is disabled until an admin token is set with --admin-token (DEEPMETER_ADMIN_TOKEN) or --admin-tokens-file (DEEPMETER_ADMIN_TOKENS_FILE)"
)

// newAuthFailures creates the auth failure counter and registers it with
// reg. When reg already holds the same counter, from an earlier New on the
// same registry, that counter is reused.
func newAuthFailures(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deepmeter_admin_auth_failures_total",
		Help: "Admin API requests rejected, by reason: missing token, invalid token, admin API disabled because no token is configured (all 401), or throttled after repeated failures from the address (429).",
	}, []string{"reason"})
	for _, reason := range []string{reasonMissing, reasonInvalid, reasonDisabled, reasonThrottled} {
		c.WithLabelValues(reason)
	}
	if reg == nil {
		return c, nil
	}

	if err := reg.Register(c); err != nil {
		var registered prometheus.AlreadyRegisteredError
		if errors.As(err, &registered) {
			if existing, ok := registered.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("admin: register auth failure metric: %w", err)
	}
	return c, nil
}

// needsToken reports whether p is under apiPrefix or pprofPrefix. Both the raw and the
// cleaned path are checked, so dot segments cannot route around the check.
func needsToken(p string) bool {
	under := func(p string) bool {
		return p == apiPrefix || strings.HasPrefix(p, apiPrefix+"/")
	}
	return under(p) || under(path.Clean(p)) || underPprof(p) || underPprof(path.Clean(p))
}

func underPprof(p string) bool {
	return p == pprofPrefix || strings.HasPrefix(p, pprofPrefix+"/")
}

// tokenEntry is an accepted token as the server keeps it.
type tokenEntry struct {
	// hash is the SHA-256 digest of the secret. Comparing digests keeps
	// the comparison time independent of the secret's length.
	hash [sha256.Size]byte
	name string
	role Role
}

// authorize returns the token that r carries. Otherwise it writes a 401,
// or a 429 to an address with too many recent failures, counts the
// failure and returns false.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) (*tokenEntry, bool) {
	addr := clientAddress(r.RemoteAddr)
	if wait, blocked := s.throttle.blocked(addr); blocked && len(s.tokens) > 0 {
		s.authFailures.WithLabelValues(reasonThrottled).Inc()
		s.log.Debug("admin request throttled", "remote_addr", addr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, envelope{Success: false, Error: "too many failed admin token checks from this address: retry later"})
		return nil, false
	}

	reason := reasonDisabled
	if len(s.tokens) > 0 {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		switch {
		case !ok:
			reason = reasonMissing
		default:
			if t := s.findToken(token); t != nil {
				return t, true
			}
			reason = reasonInvalid
		}
	}

	s.authFailures.WithLabelValues(reason).Inc()
	// With no token configured there is nothing to guess, so those
	// failures are not throttled.
	if reason == reasonDisabled {
		s.log.Debug("admin request rejected", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote_addr", addr)
	} else {
		s.logFailure(r, reason, addr, s.throttle.fail(addr))
	}

	w.Header().Set("WWW-Authenticate", "Bearer")
	message := errMsgBadToken
	if reason == reasonDisabled {
		message = errMsgDisabled
	}
	writeJSON(w, http.StatusUnauthorized, envelope{Success: false, Error: message})
	return nil, false
}

// logFailure logs a failed token check. Only the first failure of an
// address in a window and the one that throttles it are logged above
// Debug, so a flood of guesses cannot fill the log.
func (s *server) logFailure(r *http.Request, reason, addr string, failures int) {
	switch failures {
	case 1:
		s.log.Warn("admin request rejected", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote_addr", addr)
	case s.throttle.limit:
		s.log.Warn("admin requests rejected repeatedly; throttling the address", "failures", failures, "window", s.throttle.window, "remote_addr", addr)
	default:
		s.log.Debug("admin request rejected", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote_addr", addr, "failures", failures)
	}
}

// findToken compares the SHA-256 digest of secret with every accepted
// digest in constant time, without stopping at the first match, and
// returns the matching token or nil.
func (s *server) findToken(secret string) *tokenEntry {
	digest := sha256.Sum256([]byte(secret))
	found := -1
	for i := range s.tokens {
		eq := subtle.ConstantTimeCompare(digest[:], s.tokens[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil
	}
	return &s.tokens[found]
}

// mayChange reports whether a token with role may send a request with
// method. Every method but GET, HEAD and OPTIONS counts as a change, which
// only RoleAdmin may make. This holds also on routes that do not exist,
// so a read token learns nothing about them.
func mayChange(method string, role Role) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return role == RoleAdmin
}

// tokenNameKey is the context key of the authorized token's name.
type tokenNameKey struct{}

// tokenName returns the name of the token that authorized r.
func tokenName(r *http.Request) string {
	name, _ := r.Context().Value(tokenNameKey{}).(string)
	return name
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header value. The scheme is case-insensitive, as RFC 9110 specifies.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
