package routetable

import (
	"fmt"
	"strings"
)

// Pattern is a parsed route path, the one grammar the manifests' validation and the gateway's
// matcher share: literal segments, "{name}" for one non-empty segment, and a last "{name...}"
// for the rest of the path (at least one more segment, possibly empty), as net/http reads
// them.
type Pattern struct {
	segs []segment
}

type segment struct {
	kind    segKind
	literal string
}

type segKind int

const (
	literal segKind = iota
	param
	rest
)

// ParsePattern parses a route path. "/" is the root.
func ParsePattern(p string) (Pattern, error) {
	if !strings.HasPrefix(p, "/") {
		return Pattern{}, fmt.Errorf("path %q does not start with /", p)
	}
	if p == "/" {
		return Pattern{segs: []segment{{kind: literal}}}, nil
	}
	parts := strings.Split(p[1:], "/")
	segs := make([]segment, len(parts))
	for i, s := range parts {
		switch {
		case s == "":
			return Pattern{}, fmt.Errorf("empty segment")
		case s == "." || s == "..":
			return Pattern{}, fmt.Errorf("dot segment %q", s)
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "...}") && isName(s[1:len(s)-4]):
			if i != len(parts)-1 {
				return Pattern{}, fmt.Errorf("%s must be the last segment", s)
			}
			segs[i] = segment{kind: rest}
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && isName(s[1:len(s)-1]):
			segs[i] = segment{kind: param}
		case strings.ContainsAny(s, "{}"):
			return Pattern{}, fmt.Errorf("segment %q is not a literal, a {name} or a final {name...} (a name is a Go identifier)", s)
		default:
			segs[i] = segment{kind: literal, literal: s}
		}
	}
	return Pattern{segs: segs}, nil
}

// isName says whether s can name a parameter: a Go identifier, as net/http requires.
func isName(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// Match reports whether a request path, split into segments after its leading "/", matches.
func (p Pattern) Match(path []string) bool {
	for i, s := range p.segs {
		if s.kind == rest {
			return i < len(path)
		}
		if i >= len(path) {
			return false
		}
		switch s.kind {
		case param:
			if path[i] == "" {
				return false
			}
		case literal:
			if s.literal != path[i] {
				return false
			}
		}
	}
	return len(p.segs) == len(path)
}

// Overlaps reports whether some request path matches both patterns.
func (p Pattern) Overlaps(q Pattern) bool {
	a, b := p.segs, q.segs
	for i := 0; ; i++ {
		aEnd, bEnd := i >= len(a), i >= len(b)
		switch {
		case aEnd && bEnd:
			return true
		case aEnd || bEnd:
			return false // one has ended; the other needs a segment more (a rest one too)
		case a[i].kind == rest || b[i].kind == rest:
			return true // both reach segment i: the rest takes whatever the other needs
		case a[i].kind == literal && b[i].kind == literal && a[i].literal != b[i].literal:
			return false
		case a[i].kind == literal && a[i].literal == "" && b[i].kind == param,
			b[i].kind == literal && b[i].literal == "" && a[i].kind == param:
			return false // a parameter never matches an empty segment
		}
	}
}

// Specificity counts the literal segments: among patterns matching a path, the most specific
// wins (/users/me before /users/{id}).
func (p Pattern) Specificity() int {
	n := 0
	for _, s := range p.segs {
		if s.kind == literal {
			n++
		}
	}
	return n
}
