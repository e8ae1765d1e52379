package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// webFiles is the dashboard: a static page that requests an admin token,
// keeps it in the browser tab's sessionStorage and reads the JSON API with
// it. The page itself holds no data, so serving it needs no token.
//
//go:embed web
var webFiles embed.FS

// dashboardPath is the path prefix of the dashboard.
const dashboardPath = "/dashboard/"

// dashboardPolicy allows the page only its own scripts, styles and API
// calls, so a stored string that reaches the page as markup still cannot
// run or load anything.
const dashboardPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboard serves the embedded page and its assets with a strict content
// security policy.
func dashboard() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic("admin: embedded dashboard is missing: " + err.Error())
	}
	files := http.StripPrefix(dashboardPath, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
