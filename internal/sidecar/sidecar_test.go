package sidecar

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, c := range []struct {
		kind, typ, version string
		want               bool
	}{
		{"pubsub", "pubsub.kafka", "v1", true},
		{"pubsub", "pubsub.kafka", "", true},
		{"pubsub", "pubsub.redis", "v1", false},
		{"state", "state.postgresql", "v2", true},
		{"state", "state.postgresql", "v1", false},
		{"secretstores", "secretstores.kubernetes", "", true},
		{"nameresolution", "consul", "", true},
		{"nameresolution", "hashicorp.consul", "", true},
		{"nameresolution", "sqlite", "", false},
	} {
		if _, got := Lookup(c.kind, c.typ, c.version); got != c.want {
			t.Errorf("Lookup(%s, %s, %q) = %v, want %v", c.kind, c.typ, c.version, got, c.want)
		}
	}
}

// The generated file registers exactly the entries asked for, each once, and imports only what
// they need.
func TestSourceRegistersExactlyTheEntries(t *testing.T) {
	kafka, _ := Lookup("pubsub", "pubsub.kafka", "v1")
	consul, _ := Lookup("nameresolution", "consul", "")
	src, err := Source("// header\n", []Entry{consul, kafka, consul})
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "components_gen.go", src, 0)
	if err != nil {
		t.Fatalf("generated code does not parse: %v\n%s", err, src)
	}
	var calls []string
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if s, ok := c.Fun.(*ast.SelectorExpr); ok && strings.HasPrefix(s.Sel.Name, "RegisterComponent") {
				calls = append(calls, string(src[c.Pos()-1:c.End()-1]))
			}
		}
		return true
	})
	if len(calls) != 2 || !strings.Contains(calls[0], "consul.NewResolver") || !strings.Contains(calls[1], "kafka.NewKafka") {
		t.Errorf("registrations: %q", calls)
	}
	var imports []string
	for _, i := range f.Imports {
		imports = append(imports, i.Path.Value)
	}
	want := []string{
		`"github.com/dapr/components-contrib/nameresolution/hashicorp/consul"`,
		`"github.com/dapr/components-contrib/pubsub/kafka"`,
		`"github.com/dapr/dapr/pkg/components/nameresolution"`,
		`"github.com/dapr/dapr/pkg/components/pubsub"`,
	}
	if strings.Join(imports, " ") != strings.Join(want, " ") {
		t.Errorf("imports %v, want %v", imports, want)
	}
}

// The whole catalogue compiles against the pinned Dapr: tools/dapr/daprd is type-checked with
// every entry registered in place of the repository's generated file, so an entry whose
// registration no longer matches Dapr's API fails here, not when a manifest first uses it.
func TestCatalogueCompilesAgainstDapr(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks Dapr's runtime and every catalogue component (minutes with a cold build cache)")
	}
	src, err := Source("// test\n", Catalogue)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "components_gen.go")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	target, err := filepath.Abs(filepath.Join("..", "..", "tools", "dapr", "daprd", "components_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {target: file}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "-overlay", filepath.Join(dir, "overlay.json"), "./daprd")
	cmd.Dir = filepath.Join("..", "..", "tools", "dapr")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the catalogue's registrations do not compile against Dapr: %v\n%s", err, out)
	}
}

// Every catalogue entry generates valid Go on its own.
func TestEveryCatalogueEntryGenerates(t *testing.T) {
	if _, err := Source("", Catalogue); err != nil {
		t.Fatal(err)
	}
	for _, e := range Catalogue {
		src, err := Source("", []Entry{e})
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if _, err := parser.ParseFile(token.NewFileSet(), "x.go", src, 0); err != nil {
			t.Errorf("%s: %v", e.Type, err)
		}
	}
}
