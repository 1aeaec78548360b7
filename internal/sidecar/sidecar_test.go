package sidecar

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// registrations parses tools/dapr/daprd/components.go: kind -> registered names -> versions
// (nil for a plain RegisterComponent).
func registrations(t *testing.T) map[string]map[string][]string {
	t.Helper()
	path := filepath.Join("..", "..", "tools", "dapr", "daprd", "components.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{
		"pubsubLoader": "pubsub", "stateLoader": "state",
		"secretstoresLoader": "secretstores", "nrLoader": "nameresolution",
	}
	out := map[string]map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "RegisterComponent") {
			return true
		}
		reg, ok := sel.X.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		loader, _ := reg.X.(*ast.Ident)
		kind := kinds[loader.Name]
		if kind == "" {
			t.Errorf("registration through unknown registry %s", loader.Name)
			return false
		}
		var versions []string
		ast.Inspect(call, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Version" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok {
						v, _ := strconv.Unquote(lit.Value)
						versions = append(versions, v)
					}
				}
			}
			return true
		})
		for _, a := range call.Args {
			if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, _ := strconv.Unquote(lit.Value)
				if out[kind] == nil {
					out[kind] = map[string][]string{}
				}
				out[kind][name] = versions
			}
		}
		return false
	})
	return out
}

// The daprd build and this package must list the same component types: a type the compiler
// accepts but daprd lacks fails at sidecar start; one daprd has but the list lacks is dead weight.
func TestComponentsMatchTheDaprdBuild(t *testing.T) {
	regs := registrations(t)
	if len(regs) == 0 {
		t.Fatal("found no registrations in components.go")
	}
	want := map[string]bool{}
	for _, c := range Components {
		name := c.Type
		if c.Kind != "nameresolution" {
			name = strings.TrimPrefix(c.Type, c.Kind+".")
		}
		want[c.Kind+" "+name] = true
		versions, ok := regs[c.Kind][name]
		if !ok {
			t.Errorf("%s %s is in sidecar.Components but tools/dapr/daprd/components.go does not register it", c.Kind, c.Type)
			continue
		}
		for _, v := range versions {
			if !slices.Contains(c.Versions, v) {
				t.Errorf("%s %s: daprd registers version %s, sidecar.Components lacks it", c.Kind, c.Type, v)
			}
		}
		for _, v := range c.Versions {
			if v != "" && v != "v1" && !slices.Contains(versions, v) {
				t.Errorf("%s %s: sidecar.Components accepts %s, daprd does not register it", c.Kind, c.Type, v)
			}
		}
	}
	for kind, names := range regs {
		for name := range names {
			if !want[kind+" "+name] {
				t.Errorf("daprd registers %s %s, sidecar.Components lacks it", kind, name)
			}
		}
	}
}

func TestSupports(t *testing.T) {
	for _, c := range []struct {
		kind, typ, version string
		want               bool
	}{
		{"pubsub", "pubsub.kafka", "v1", true},
		{"pubsub", "pubsub.kafka", "", true},
		{"pubsub", "pubsub.redis", "v1", false},
		{"state", "state.postgresql", "v2", false}, // no module declares state
		{"secretstores", "secretstores.local.env", "", false},
		{"secretstores", "secretstores.kubernetes", "", true},
		{"nameresolution", "consul", "", true},
		{"nameresolution", "sqlite", "", false},
	} {
		if got := Supports(c.kind, c.typ, c.version); got != c.want {
			t.Errorf("Supports(%s, %s, %q) = %v, want %v", c.kind, c.typ, c.version, got, c.want)
		}
	}
}

func TestComponentSetIsStableAndShort(t *testing.T) {
	a, b := ComponentSet(), ComponentSet()
	if a != b || len(a) != 10 {
		t.Fatalf("ComponentSet() = %q then %q", a, b)
	}
}
