package dashboard

import (
	"errors"
	"time"
)

var errNotFound = errors.New("not found")

// waterfallView is a trace drawn as bars: each span's offset and width in percent of the
// trace, indented by depth.
type waterfallView struct {
	Trace Trace
	Rows  []waterfallRow
}

type waterfallRow struct {
	Span        Span
	Depth       int
	Left, Width float64
	Duration    time.Duration
}

func waterfall(t Trace) waterfallView {
	total := t.Duration()
	if total <= 0 {
		total = time.Microsecond
	}
	byID := map[string]Span{}
	for _, s := range t.Spans {
		byID[s.ID] = s
	}
	depth := func(s Span) int {
		d := 0
		for p, ok := byID[s.Parent]; ok && d < 32; p, ok = byID[p.Parent] {
			d++
		}
		return d
	}
	v := waterfallView{Trace: t}
	for _, s := range t.Spans {
		left := float64(s.Start.Sub(t.Start())) / float64(total) * 100
		width := max(float64(s.End.Sub(s.Start))/float64(total)*100, 0.5)
		v.Rows = append(v.Rows, waterfallRow{Span: s, Depth: depth(s), Left: left, Width: min(width, 100-left), Duration: s.End.Sub(s.Start)})
	}
	return v
}
