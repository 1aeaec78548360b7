package manifest

import (
	"fmt"
	"sort"
	"strings"
)

// Position is a place in a manifest file (1-based line and column; 0 when unknown).
type Position struct {
	File string
	Line int
	Col  int
}

func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Problem is one finding: where, which rule, what is wrong and what to do.
type Problem struct {
	Pos  Position
	Rule string // stable rule id, e.g. "dependency-cycle"
	Msg  string
	Fix  string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s: %s [%s]", p.Pos, p.Msg, p.Rule)
	if p.Fix != "" {
		s += "\n    fix: " + p.Fix
	}
	return s
}

// Problems is every finding of a load, sorted by file and position. It is an error when
// non-empty.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d problem(s) in the manifests:\n%s", len(ps), strings.Join(lines, "\n"))
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return ps
}
