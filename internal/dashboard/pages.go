package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed templates/dashboard.css
var css []byte

var funcs = template.FuncMap{
	"ms": func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05.000") },
	"add":   func(a, b int) int { return a + b },
	"half":  func(a int) int { return a / 2 },
	"mul":   func(a, b int) int { return a * b },
	"list":  func(s ...string) []string { return s },
	"shortid": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
}

var pages = map[string]*template.Template{}

func init() {
	for _, name := range []string{"overview", "routes", "topics", "audit", "artifacts", "traces", "trace", "metrics", "logs"} {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
}

// page renders a page from what data returns (a 404 for errNotFound).
func (s *Server) page(name string, data func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := data(r)
		if errors.Is(err, errNotFound) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var b bytes.Buffer
		if err := pages[name].Execute(&b, struct {
			Page string
			Data any
		}{name, d}); err != nil {
			s.opts.Log.Error("dashboard page", "page", name, "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b.Bytes())
	}
}
