package routetable

import (
	"strings"
	"testing"
)

func split(path string) []string { return strings.Split(path[1:], "/") }

func TestParsePattern(t *testing.T) {
	for p, bad := range map[string]string{
		"/":                     "",
		"/users/{id}":           "",
		"/files/{path...}":      "",
		"/a/b/c":                "",
		"users":                 "does not start with /",
		"/a//b":                 "empty segment",
		"/a/..":                 "dot segment",
		"/{rest...}/x":          "must be the last segment",
		"/a/x{id}":              "is not a literal",
		"/a/{}":                 "is not a literal",
		"/a/{{id}}":             "is not a literal",
		"/a/{...}":              "is not a literal",
		"/a/":                   "empty segment",
		"/users/{id}/{rest...}": "",
		"/a/{1x}":               "is not a literal",
		"/a/{x-y}":              "is not a literal",
	} {
		_, err := ParsePattern(p)
		if (bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), bad)) {
			t.Errorf("ParsePattern(%q) = %v, want %q", p, err, bad)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		ok            bool
	}{
		{"/", "/", true},
		{"/", "/a", false},
		{"/users/{id}", "/users/42", true},
		{"/users/{id}", "/users/", false},
		{"/users/{id}", "/users", false},
		{"/users/{id}", "/users/42/x", false},
		{"/files/{p...}", "/files/a/b", true},
		{"/files/{p...}", "/files/", true}, // as net/http: the rest may be empty
		{"/files/{p...}", "/files", false},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/c", false},
	} {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(split(c.path)); got != c.ok {
			t.Errorf("%s matches %s = %v, want %v", c.pattern, c.path, got, c.ok)
		}
	}
}

// Overlaps agrees with Match: two patterns overlap exactly when some path matches both.
func TestOverlapsAgreesWithMatch(t *testing.T) {
	patterns := []string{"/", "/a", "/a/b", "/a/{x}", "/{x}", "/{x}/b", "/a/{r...}", "/{r...}", "/a/b/{r...}", "/b/{x}/c"}
	paths := []string{"/", "/a", "/b", "/a/", "/a/b", "/a/c", "/b/b", "/a/b/c", "/b/x/c", "/a/b/", "/x/y/z/w"}
	for _, x := range patterns {
		for _, y := range patterns {
			px, _ := ParsePattern(x)
			py, _ := ParsePattern(y)
			want := false
			for _, path := range paths {
				if px.Match(split(path)) && py.Match(split(path)) {
					want = true
				}
			}
			if got := px.Overlaps(py); got != want {
				t.Errorf("%s overlaps %s = %v, but some sample path matching both: %v", x, y, got, want)
			}
		}
	}
}
