package dashboard

import (
	"slices"
	"sort"

	"github.com/goplt/goplt/internal/manifest"
)

// graphView is the module graph laid out for SVG: columns by dependency depth (a module
// right of everything it depends on), dependency arrows solid, event flows dashed.
type graphView struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
}

type graphNode struct {
	ID, Label, State string
	Replicas         int
	X, Y             int // top left
}

type graphEdge struct {
	X1, Y1, X2, Y2 int
	Event          bool
	Title          string
}

const (
	nodeW, nodeH = 150, 46
	colGap       = 90
	rowGap       = 26
	margin       = 20
)

func layout(set *manifest.Set, state map[string]string) graphView {
	depth := map[string]int{}
	var visit func(name string, seen []string) int
	visit = func(name string, seen []string) int {
		if d, ok := depth[name]; ok {
			return d
		}
		m := set.Module(name)
		d := 0
		if m != nil && !slices.Contains(seen, name) {
			for _, dep := range m.Spec.DependsOn {
				d = max(d, visit(dep.Name, append(seen, name))+1)
			}
		}
		depth[name] = d
		return d
	}
	cols := map[int][]string{}
	maxCol := 0
	for _, m := range set.Modules {
		d := visit(m.Metadata.Name, nil)
		cols[d] = append(cols[d], m.Metadata.Name)
		maxCol = max(maxCol, d)
	}
	pos := map[string]graphNode{}
	var g graphView
	maxRows := 0
	for c := 0; c <= maxCol; c++ {
		sort.Strings(cols[c])
		maxRows = max(maxRows, len(cols[c]))
		for r, name := range cols[c] {
			m := set.Module(name)
			st := state[m.Spec.App.ID]
			if st == "" {
				st = "unknown"
			}
			n := graphNode{ID: m.Spec.App.ID, Label: name, State: st, Replicas: m.Spec.App.Instances(),
				X: margin + c*(nodeW+colGap), Y: margin + r*(nodeH+rowGap)}
			pos[name] = n
			g.Nodes = append(g.Nodes, n)
		}
	}
	g.Width = margin*2 + (maxCol+1)*nodeW + maxCol*colGap
	g.Height = margin*2 + maxRows*nodeH + max(maxRows-1, 0)*rowGap
	for _, m := range set.Modules {
		from := pos[m.Metadata.Name]
		for _, d := range m.Spec.DependsOn {
			to, ok := pos[d.Name]
			if !ok {
				continue
			}
			g.Edges = append(g.Edges, graphEdge{X1: from.X, Y1: from.Y + nodeH/2, X2: to.X + nodeW, Y2: to.Y + nodeH/2,
				Title: m.Metadata.Name + " depends on " + d.Name})
		}
	}
	// Events: publisher to subscriber, once per pair.
	pub := map[string]string{}
	for _, m := range set.Modules {
		for _, p := range m.Spec.Events.Publishes {
			pub[p.Topic] = m.Metadata.Name
		}
	}
	seen := map[[2]string]bool{}
	for _, m := range set.Modules {
		for _, s := range m.Spec.Events.Subscribes {
			p, ok := pub[s.Topic]
			if !ok || p == m.Metadata.Name || seen[[2]string{p, m.Metadata.Name}] {
				continue
			}
			seen[[2]string{p, m.Metadata.Name}] = true
			a, b := pos[p], pos[m.Metadata.Name]
			g.Edges = append(g.Edges, graphEdge{X1: a.X + nodeW/2, Y1: a.Y + nodeH, X2: b.X + nodeW/2, Y2: b.Y, Event: true,
				Title: p + " publishes to " + m.Metadata.Name})
		}
	}
	return g
}
