package compile

import (
	"fmt"
	"strings"

	"github.com/goplt/goplt/internal/manifest"
)

// GraphText lists modules in dependency order, each with what it depends on.
func GraphText(set *manifest.Set) string {
	var b strings.Builder
	for _, name := range set.Order() {
		m := set.Module(name)
		fmt.Fprintf(&b, "%s %s", name, m.Metadata.Version)
		for i, d := range m.Spec.DependsOn {
			sep := " -> "
			if i > 0 {
				sep = ", "
			}
			fmt.Fprintf(&b, "%s%s (%s)", sep, d.Name, d.Version)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// GraphDOT renders the dependency graph for Graphviz (`goplt graph --dot | dot -Tsvg`).
func GraphDOT(set *manifest.Set) string {
	var b strings.Builder
	b.WriteString("digraph goplt {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, name := range set.Order() {
		m := set.Module(name)
		fmt.Fprintf(&b, "  %q [label=%q];\n", name, name+"\n"+m.Metadata.Version)
	}
	for _, name := range set.Order() {
		for _, d := range set.Module(name).Spec.DependsOn {
			fmt.Fprintf(&b, "  %q -> %q [label=%q];\n", name, d.Name, d.Version)
		}
	}
	b.WriteString("}\n")
	return b.String()
}
