package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
)

// pprofPrefix is where the Go profiler's handlers are served. Like the
// admin API, they need a token, and one with role admin: a profile shows
// code paths and memory contents, and a CPU profile costs CPU while it runs.
const pprofPrefix = "/debug/pprof"

// addPprofRoutes mounts the net/http/pprof handlers under pprofPrefix. The
// cmdline handler is left out, because the command line can carry the
// admin token and the database password.
func addPprofRoutes(r *mux.Router) {
	r.HandleFunc(pprofPrefix+"/", pprof.Index).Methods(http.MethodGet)
	r.HandleFunc(pprofPrefix+"/profile", pprof.Profile).Methods(http.MethodGet)
	r.HandleFunc(pprofPrefix+"/symbol", pprof.Symbol).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc(pprofPrefix+"/trace", pprof.Trace).Methods(http.MethodGet)
	// pprof.Index serves the named profiles: heap, goroutine, allocs and
	// the others.
	r.PathPrefix(pprofPrefix + "/").HandlerFunc(pprof.Index).Methods(http.MethodGet)
}
