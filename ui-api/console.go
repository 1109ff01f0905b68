package uiapi

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

// The console: one page, its script and its styles, embedded. No build
// step, nothing fetched from elsewhere.
//
//go:embed console
var consoleFiles embed.FS

// Console serves the console: its page at / and its assets under
// /console/. They hold no data; the page asks for a token and sends it
// with every GraphQL request.
func Console() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Nothing but this origin's own files and GraphQL: no inline
		// script, no framing.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		name := path.Clean(r.URL.Path)
		if path.Dir(name) != "/console" || name == "/console/index.html" {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + path.Base(name)
		files.ServeHTTP(w, r2)
	})
}
