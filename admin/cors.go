package admin

import (
	"net/http"
	"strings"
)

// corsMaxAge is the time in seconds a browser may cache a preflight response.
const corsMaxAge = "600"

// handleCORS adds CORS headers for the configured origin and responds to
// a preflight request, reporting whether it did. A request from any other
// origin, or any request when no origin is configured, gets no CORS
// header, so browsers keep other sites' pages from reading responses.
// Access-Control-Allow-Credentials is never sent, because the API takes
// its token from the Authorization header, not from cookies.
func (s *server) handleCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight && (s.corsOrigin == "" || origin != s.corsOrigin) {
		// A browser sends no token with a preflight, so rejecting it here
		// keeps it from counting as a failed token check and throttling
		// the address.
		writeJSON(w, http.StatusForbidden, envelope{Success: false, Error: "cross-origin requests from this origin are not allowed"})
		return true
	}
	if s.corsOrigin == "" || origin == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin != s.corsOrigin {
		return false
	}
	h.Set("Access-Control-Allow-Origin", s.corsOrigin)

	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", strings.Join([]string{http.MethodGet, http.MethodPost}, ", "))
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
