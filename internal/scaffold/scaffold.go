// Package scaffold renders the files of a new module: its manifest, its app on the kernel, a
// migration, an event schema, a README and tests that pass as written. The templates are
// beside it (templates/); the sample module apps/notes is what they follow.
package scaffold

import (
	"bytes"
	"embed"
	"fmt"
	"go/format"
	"go/token"
	"path"
	"regexp"
	"strings"
	"text/template"
)

//go:embed templates/*.tmpl
var templates embed.FS

// File is one file to write, its path relative to the repository root.
type File struct {
	Path string
	Data []byte
}

// nameRE is what a module name may be: one word that is at once a Go package name, a
// PostgreSQL schema, a Dapr app id, a Kafka user and the first segment of its topics.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,29}$`)

// reserved are names that would clash with a module's own folders (apps/<name>/contract,
// apps/<name>/permissions) or with the platform's.
var reserved = map[string]bool{
	"contract": true, "permissions": true, "migrations": true, "internal": true, "kernel": true,
	"platform": true, "main": true, "events": true, "console": true,
}

// CheckName says what is wrong with name as a module name, or nil.
func CheckName(name string) error {
	switch {
	case !nameRE.MatchString(name):
		return fmt.Errorf("module name %q: use 2 to 30 lowercase letters and digits, starting with a letter (it is the Go package, the database schema, the app id and the topics' prefix)", name)
	case token.IsKeyword(name) || reserved[name]:
		return fmt.Errorf("module name %q is reserved (a Go keyword or a name the platform uses); choose another", name)
	}
	return nil
}

// Module renders the files of module name. Go files are gofmt'ed.
func Module(name string) ([]File, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	data := struct{ Name, Title string }{name, strings.ToUpper(name[:1]) + name[1:]}
	app := path.Join("apps", name)
	pkg := path.Join(app, name)
	out := []struct{ tmpl, path string }{
		{"manifest.yaml.tmpl", path.Join("manifests", name+".yaml")},
		{"schema.json.tmpl", path.Join("schemas", "events", name+".item.created.v1.json")},
		{"main.go.tmpl", path.Join(app, "main.go")},
		{"main_test.go.tmpl", path.Join(app, "main_test.go")},
		{"README.md.tmpl", path.Join(app, "README.md")},
		{"module.go.tmpl", path.Join(pkg, name+".go")},
		{"module_test.go.tmpl", path.Join(pkg, name+"_test.go")},
		{"integration_test.go.tmpl", path.Join(pkg, "integration_test.go")},
		{"migration.sql.tmpl", path.Join(pkg, "migrations", "00001_"+name+".sql")},
	}
	files := make([]File, 0, len(out))
	for _, o := range out {
		t, err := template.ParseFS(templates, "templates/"+o.tmpl)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("render %s: %w", o.path, err)
		}
		src := b.Bytes()
		if strings.HasSuffix(o.path, ".go") {
			if src, err = format.Source(src); err != nil {
				return nil, fmt.Errorf("render %s: %w", o.path, err)
			}
		}
		files = append(files, File{Path: o.path, Data: src})
	}
	return files, nil
}

// AddDependency returns manifest src with entry ("{name: x, version: ...}") added to the
// dependsOn list whose entries begin at the given 1-based lines (first and last), keeping
// the file's comments and layout: after the last entry when entries are one-line flow
// mappings, else before the first.
func AddDependency(src []byte, first, last int, entry string) ([]byte, error) {
	lines := strings.SplitAfter(string(src), "\n")
	if first < 1 || last < first || last > len(lines) {
		return nil, fmt.Errorf("dependsOn entries at lines %d-%d are not in the file", first, last)
	}
	at := lines[first-1]
	dash := strings.Index(at, "- ")
	if dash < 0 || strings.TrimSpace(at[:dash]) != "" {
		return nil, fmt.Errorf("line %d does not start a list entry", first)
	}
	line := at[:dash] + "- " + entry + "\n"
	insert := first - 1
	if l := strings.TrimSpace(lines[last-1]); strings.HasPrefix(l, "- {") && strings.HasSuffix(l, "}") {
		insert = last
	}
	out := append([]string{}, lines[:insert]...)
	if n := len(out); n > 0 && !strings.HasSuffix(out[n-1], "\n") {
		out[n-1] += "\n"
	}
	out = append(out, line)
	out = append(out, lines[insert:]...)
	return []byte(strings.Join(out, "")), nil
}
