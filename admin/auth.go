package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the reason label of deepmeter_admin_auth_failures_total.
const (
	reasonMissing  = "missing"  // no Authorization header with a Bearer token
	reasonInvalid  = "invalid"  // a token that matches none of Config.Tokens
	reasonDisabled = "disabled" // no token is configured
)

const (
	errMsgBadToken = "missing or invalid admin token"
	errMsgDisabled = "admin API is disabled until an admin token is set with --admin-token or DEEPMETER_ADMIN_TOKEN"
)

// newAuthFailures creates the auth failure counter and registers it with
// reg. When reg already holds the same counter, from an earlier New on the
// same registry, that counter is reused.
func newAuthFailures(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deepmeter_admin_auth_failures_total",
		Help: "Admin API requests rejected with 401, by reason: missing token, invalid token, or admin API disabled because no token is configured.",
	}, []string{"reason"})
	for _, reason := range []string{reasonMissing, reasonInvalid, reasonDisabled} {
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

// needsToken reports whether p is under usagePrefix or pprofPrefix. Both the raw and the
// cleaned path are checked, so dot segments cannot route around the check.
func needsToken(p string) bool {
	under := func(p string) bool {
		return p == usagePrefix || strings.HasPrefix(p, usagePrefix+"/")
	}
	return under(p) || under(path.Clean(p)) || underPprof(p) || underPprof(path.Clean(p))
}

func underPprof(p string) bool {
	return p == pprofPrefix || strings.HasPrefix(p, pprofPrefix+"/")
}

// authorize reports whether r carries an accepted bearer token. Otherwise
// it writes the 401 response, counts the failure and returns false.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) bool {
	reason := reasonDisabled
	if len(s.tokenHashes) > 0 {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		switch {
		case !ok:
			reason = reasonMissing
		case !s.tokenAccepted(token):
			reason = reasonInvalid
		default:
			return true
		}
	}

	s.authFailures.WithLabelValues(reason).Inc()
	s.log.Debug("admin request rejected", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote_addr", r.RemoteAddr)

	w.Header().Set("WWW-Authenticate", "Bearer")
	message := errMsgBadToken
	if reason == reasonDisabled {
		message = errMsgDisabled
	}
	writeJSON(w, http.StatusUnauthorized, envelope{Success: false, Error: message})
	return false
}

// tokenAccepted compares the SHA-256 digest of token with every accepted
// digest in constant time, without stopping at the first match.
func (s *server) tokenAccepted(token string) bool {
	digest := sha256.Sum256([]byte(token))
	match := 0
	for i := range s.tokenHashes {
		match |= subtle.ConstantTimeCompare(digest[:], s.tokenHashes[i][:])
	}
	return match == 1
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
