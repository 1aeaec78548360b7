package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/goplt/goplt/internal/routetable"
)

// Route is one entry of the compiled route table, ready for matching.
type Route struct {
	routetable.Route
	pattern routetable.Pattern
	request *jsonschema.Schema // the request body's schema, if the route names one
}

// Table is a loaded route table. It is immutable: reloads build a new one.
type Table struct {
	Routes []*Route
	// Schemas are the request and response schemas the routes name, as the file holds them
	// (the API document carries them).
	Schemas map[string]json.RawMessage

	openapiOnce sync.Once
	openapi     map[string]any // the API document but its servers (OpenAPI)
}

// LoadTable reads and checks a route table file.
func LoadTable(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	var doc routetable.File
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("route table %s: %w", path, err)
	}
	compiled, err := compileSchemas(doc.Schemas)
	if err != nil {
		return nil, fmt.Errorf("route table %s: %w", path, err)
	}
	routes := make([]*Route, len(doc.Routes))
	for i, r := range doc.Routes {
		routes[i] = &Route{Route: r}
		for _, name := range []string{r.Request, r.ResponseSchema()} {
			if _, ok := doc.Schemas[name]; name != "" && !ok {
				return nil, fmt.Errorf("route table %s: route %s %s names schema %s, which the file does not hold", path, r.Method, r.Path, name)
			}
		}
		if r.Request != "" {
			routes[i].request = compiled[r.Request]
		}
	}
	t, err := NewTable(routes)
	if err != nil {
		return nil, err
	}
	t.Schemas = doc.Schemas
	return t, nil
}

// NewTable checks routes and prepares them for matching.
func NewTable(routes []*Route) (*Table, error) {
	for _, r := range routes {
		if !strings.HasPrefix(r.Path, "/") || r.AppID == "" || r.Method == "" {
			return nil, fmt.Errorf("route %s %s: needs a method, an app id and a path starting with /", r.Method, r.Path)
		}
		if !r.Public && r.Permission == "" {
			return nil, fmt.Errorf("route %s %s: neither public nor a permission", r.Method, r.Path)
		}
		p, err := routetable.ParsePattern(r.Path)
		if err != nil {
			return nil, fmt.Errorf("route %s %s: %w", r.Method, r.Path, err)
		}
		r.pattern = p
	}
	// Literal segments before parameters, so /users/me wins over /users/{id} if both exist.
	sort.SliceStable(routes, func(i, j int) bool { return routes[i].pattern.Specificity() > routes[j].pattern.Specificity() })
	return &Table{Routes: routes}, nil
}

// Match finds the route for method and a canonical path. With no route for the method but
// some for the path, allowed lists their methods (for 405).
func (t *Table) Match(method, path string) (r *Route, allowed []string) {
	segs := strings.Split(path[1:], "/")
	for _, rt := range t.Routes {
		if !rt.pattern.Match(segs) {
			continue
		}
		if rt.Method == method || (method == "HEAD" && rt.Method == "GET") {
			return rt, nil
		}
		allowed = append(allowed, rt.Method)
	}
	return nil, allowed
}

// errPath explains a refused path.
var errPath = errors.New("path")

// Canonical checks that the request path has one meaning only, so the path that picks the
// route (and so the permission) is the path the module receives. Everything that some layer
// might decode, collapse or reinterpret differently is refused rather than normalised: dot
// segments, empty segments, encoded slashes, dots, backslashes and percent signs (double
// encoding), NUL and control characters, ';' parameters, and a trailing slash.
func Canonical(u *url.URL) (string, error) {
	raw := u.EscapedPath()
	if raw == "" || raw[0] != '/' {
		return "", fmt.Errorf("%w must start with /", errPath)
	}
	if len(raw) > 2048 {
		return "", fmt.Errorf("%w longer than 2048 bytes", errPath)
	}
	lower := strings.ToLower(raw)
	for _, bad := range []string{"%2f", "%5c", "%2e", "%25", "%00", "%3b", ";", "\\"} {
		if strings.Contains(lower, bad) {
			return "", fmt.Errorf("%w contains %q, which is ambiguous", errPath, bad)
		}
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errPath, err)
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w contains a control character", errPath)
		}
	}
	if p != "/" {
		for _, s := range strings.Split(p[1:], "/") {
			switch s {
			case "":
				return "", fmt.Errorf("%w has an empty segment or a trailing slash", errPath)
			case ".", "..":
				return "", fmt.Errorf("%w has a dot segment", errPath)
			}
		}
	}
	return p, nil
}
