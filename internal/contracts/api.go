package contracts

import (
	"fmt"
	"maps"
	"slices"
)

// Rules an HTTP API change can break (besides the schema rules of Breaking).
const (
	RuleRouteRemoved      = "route-removed"      // a route the gateway exposed is gone
	RulePermissionChanged = "permission-changed" // another permission, or a public route now needs a token
	RuleStatusChanged     = "status-changed"     // the successful answer's status differs
)

// Route is a route's HTTP contract: its access and its request and response schemas.
type Route struct {
	Method, Path string
	Permission   string
	Public       bool
	Request      map[string]any // nil: not declared
	Response     map[string]any // nil: not declared
	Status       int            // of the successful answer, when Response is declared
}

// Key names a route: "POST /blog/posts".
func (r Route) Key() string { return r.Method + " " + r.Path }

// API reads the routes a tree's manifests expose through the gateway (internal routes, with
// callers, are not part of the public contract), with their schemas. where maps a route's key
// to its manifest file.
func API(root string) (routes map[string]Route, where map[string]string, err error) {
	mods, err := modules(root)
	if err != nil {
		return nil, nil, err
	}
	routes, where = map[string]Route{}, map[string]string{}
	for _, m := range mods {
		for _, r := range m.Spec.Routes {
			if len(r.Callers) > 0 {
				continue
			}
			rt := Route{Method: r.Method, Path: r.Path, Permission: r.Permission, Public: r.Public}
			if r.Request != "" {
				if rt.Request, err = readSchema(root, r.Request); err != nil {
					return nil, nil, fmt.Errorf("%s: request schema of %s: %w", m.file, rt.Key(), err)
				}
			}
			if r.Response != nil && r.Response.Schema != "" {
				if rt.Response, err = readSchema(root, r.Response.Schema); err != nil {
					return nil, nil, fmt.Errorf("%s: response schema of %s: %w", m.file, rt.Key(), err)
				}
				rt.Status = max(r.Response.Status, 200)
			}
			routes[rt.Key()] = rt
			where[rt.Key()] = m.file
		}
	}
	return routes, where, nil
}

// RouteChange is a breaking change to one route's contract.
type RouteChange struct {
	Route string // its key
	Change
}

// CompareAPI returns the breaking changes from the old set of routes to the new one: a route
// removed, its access narrowed, its success status changed, or a request or response schema
// changed so that either side's bodies break (the rules of Breaking, pointers prefixed with
// request or response). Declaring a schema where there was none is not reported: it states
// the contract the handler already kept.
func CompareAPI(old, new map[string]Route) []RouteChange {
	var out []RouteChange
	for _, k := range slices.Sorted(maps.Keys(old)) {
		o := old[k]
		n, ok := new[k]
		if !ok {
			out = append(out, RouteChange{k, Change{Rule: RuleRouteRemoved, Detail: "no module exposes " + k + " any more"}})
			continue
		}
		switch {
		case o.Public && !n.Public:
			out = append(out, RouteChange{k, Change{Rule: RulePermissionChanged, Detail: fmt.Sprintf("public before, now requires %s", n.Permission)}})
		case !o.Public && !n.Public && o.Permission != n.Permission:
			out = append(out, RouteChange{k, Change{Rule: RulePermissionChanged, Detail: fmt.Sprintf("requires %s, was %s", n.Permission, o.Permission)}})
		}
		if o.Request != nil && n.Request != nil {
			for _, c := range Breaking(o.Request, n.Request) {
				c.Path, c.Detail = "/request"+c.Path, "request body: "+c.Detail
				out = append(out, RouteChange{k, c})
			}
		}
		if o.Response != nil && n.Response != nil {
			if o.Status != n.Status {
				out = append(out, RouteChange{k, Change{Rule: RuleStatusChanged, Detail: fmt.Sprintf("answers %d, was %d", n.Status, o.Status)}})
			}
			for _, c := range Breaking(o.Response, n.Response) {
				c.Path, c.Detail = "/response"+c.Path, "response body: "+c.Detail
				out = append(out, RouteChange{k, c})
			}
		}
	}
	return out
}
