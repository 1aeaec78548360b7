package runner

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// prefixer writes each child's lines behind a fixed-width, optionally coloured name, one
// colour per app (its sidecar shares it).
type prefixer struct {
	mu     sync.Mutex
	out    io.Writer
	lines  func(app, name, line string) // nil: none
	color  bool
	colors map[string]string
	width  int
}

var palette = []string{"36", "33", "32", "35", "34", "91", "96", "93", "92", "95"}

func newPrefixer(out io.Writer, color bool, ids []string, lines func(app, name, line string)) *prefixer {
	p := &prefixer{out: out, color: color, colors: map[string]string{}, lines: lines}
	for i, id := range ids {
		p.colors[id] = palette[i%len(palette)]
		p.width = max(p.width, len(id)+len(".dapr"))
	}
	return p
}

// fit widens the labels for name (an instance such as blog#2).
func (p *prefixer) fit(name string) { p.width = max(p.width, len(name)+len(".dapr")) }

type prefixWriter struct {
	p         *prefixer
	prefix    string
	app, name string
}

func (p *prefixer) writer(app, name string) io.Writer {
	label := fmt.Sprintf("%-*s |", p.width, name)
	if p.color {
		label = "\x1b[" + p.colors[app] + "m" + label + "\x1b[0m"
	}
	return &prefixWriter{p: p, prefix: label + " ", app: app, name: name}
}

// Write receives whole lines from proc (one per call).
func (w *prefixWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if w.p.lines != nil {
			w.p.lines(w.app, w.name, strings.TrimSuffix(line, "\n"))
		}
		if _, err := io.WriteString(w.p.out, w.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
