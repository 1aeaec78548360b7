package scaffold

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"greetings": true, "inventory2": true, "ab": true,
		"": false, "a": false, "Greetings": false, "my-module": false, "my_module": false,
		"2fa": false, "func": false, "type": false, "contract": false, "permissions": false,
		strings.Repeat("x", 31): false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestModuleRendersValidGo(t *testing.T) {
	files, err := Module("greetings")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.Path] = true
		if strings.Contains(string(f.Data), "{{") || strings.Contains(string(f.Data), "<no value>") {
			t.Errorf("%s: template not fully rendered", f.Path)
		}
		if strings.HasSuffix(f.Path, ".go") {
			if _, err := parser.ParseFile(token.NewFileSet(), f.Path, f.Data, 0); err != nil {
				t.Errorf("%s: %v", f.Path, err)
			}
		}
	}
	for _, want := range []string{"manifests/greetings.yaml", "apps/greetings/main.go",
		"apps/greetings/greetings/greetings.go", "apps/greetings/greetings/migrations/00001_greetings.sql",
		"schemas/events/greetings.item.created.v1.json"} {
		if !seen[want] {
			t.Errorf("no %s among %d files", want, len(files))
		}
	}
	if _, err := Module("Bad-Name"); err == nil {
		t.Error("Module accepted an invalid name")
	}
}

func TestAddDependency(t *testing.T) {
	flow := "spec:\n  # start order\n  dependsOn:\n    - {name: a, version: \">=1\"}\n    - {name: b, version: \">=1\"}\n  events: {}\n"
	got, err := AddDependency([]byte(flow), 4, 5, "{name: c, version: \">=0.1.0\"}")
	if err != nil {
		t.Fatal(err)
	}
	want := "spec:\n  # start order\n  dependsOn:\n    - {name: a, version: \">=1\"}\n    - {name: b, version: \">=1\"}\n    - {name: c, version: \">=0.1.0\"}\n  events: {}\n"
	if string(got) != want {
		t.Errorf("flow entries:\n%s\nwant\n%s", got, want)
	}
	// Block mappings span lines: the new entry goes first, where its indentation is known.
	block := "spec:\n  dependsOn:\n  - name: a\n    version: \">=1\"\n"
	got, err = AddDependency([]byte(block), 3, 3, "{name: c, version: \">=0.1.0\"}")
	if err != nil {
		t.Fatal(err)
	}
	if want := "spec:\n  dependsOn:\n  - {name: c, version: \">=0.1.0\"}\n  - name: a\n    version: \">=1\"\n"; string(got) != want {
		t.Errorf("block entries:\n%s\nwant\n%s", got, want)
	}
	// No trailing newline at the end of the list.
	got, err = AddDependency([]byte("dependsOn:\n  - {name: a}"), 2, 2, "{name: c}")
	if err != nil || string(got) != "dependsOn:\n  - {name: a}\n  - {name: c}\n" {
		t.Errorf("no final newline: %q %v", got, err)
	}
	if _, err := AddDependency([]byte(flow), 1, 1, "{name: c}"); err == nil {
		t.Error("a line that is no list entry was accepted")
	}
}
