// Package manifest loads and validates goplt's manifests: one module.yaml per module and one
// platform.yaml, all in manifests/. Loading is strict (JSON Schema, unknown keys rejected) and
// every problem carries file:line:column, a rule id and a fix; all problems of a load are
// reported together.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/schemas"
)

// MaxFileSize bounds one manifest file; anything larger is refused before parsing.
const MaxFileSize = 1 << 20

// maxDepth bounds nesting: no real manifest is deeper than a handful of levels.
const maxDepth = 32

// Set is every manifest of a system: the platform file and the modules, sorted by name.
type Set struct {
	Platform *Platform
	Modules  []*Module
	// Root is the folder paths inside manifests are relative to (the repository root).
	Root string
}

// Module returns the module with the given name.
func (s *Set) Module(name string) *Module {
	for _, m := range s.Modules {
		if m.Metadata.Name == name {
			return m
		}
	}
	return nil
}

// document is one parsed file and the position of every value in it, by JSON pointer.
type document struct {
	file string
	pos  map[string]Position
}

// at returns the position of the value at pointer (or of its nearest parent).
func (d *document) at(pointer string) Position {
	for p := pointer; ; {
		if pos, ok := d.pos[p]; ok {
			return pos
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return Position{File: d.file}
		}
		p = p[:i]
	}
}

// PosOf returns the position of the value at a JSON pointer in the module's file, e.g.
// "/spec/routes/2/path".
func (m *Module) PosOf(pointer string) Position { return m.doc.at(pointer) }

// File is the module's manifest file.
func (m *Module) File() string { return m.doc.file }

// PosOf returns the position of the value at a JSON pointer in platform.yaml.
func (p *Platform) PosOf(pointer string) Position { return p.doc.at(pointer) }

// PlatformFile is the platform file's name in the manifests folder.
const PlatformFile = "platform.yaml"

// LoadDir loads every *.yaml in dir (platform.yaml and one file per module), validates each
// against its schema and the set against the semantic rules. root is the folder that paths in
// manifests are relative to. It returns Problems (as the error) when anything is wrong.
func LoadDir(dir, root string) (*Set, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	yml, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	names = append(names, yml...)
	sort.Strings(names)
	files := map[string][]byte{}
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, n)
		if st.Size() > MaxFileSize {
			return nil, Problems{{Pos: Position{File: rel}, Rule: "file-size",
				Msg: fmt.Sprintf("file is %d bytes; manifests are limited to %d", st.Size(), MaxFileSize),
				Fix: "split it or remove what is not a manifest"}}
		}
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		files[rel] = b
	}
	return Load(files, root)
}

// Load parses and validates manifests given as file name -> content. Names are used in
// positions; root resolves paths inside manifests (migrations, event schemas).
func Load(files map[string][]byte, root string) (*Set, error) {
	set := &Set{Root: root}
	var probs Problems
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		data := files[name]
		if len(data) > MaxFileSize {
			probs = append(probs, Problem{Pos: Position{File: name}, Rule: "file-size",
				Msg: fmt.Sprintf("file is %d bytes; manifests are limited to %d", len(data), MaxFileSize)})
			continue
		}
		doc, value, ps := parse(name, data)
		if len(ps) > 0 {
			probs = append(probs, ps...)
			continue
		}
		kind, _ := value.(map[string]any)["kind"].(string)
		isPlatform := filepath.Base(name) == PlatformFile
		schemaName := "module.schema.json"
		if isPlatform {
			schemaName = "platform.schema.json"
		}
		if ps := validateSchema(doc, schemaName, value); len(ps) > 0 {
			probs = append(probs, ps...)
			continue
		}
		switch {
		case isPlatform:
			if set.Platform != nil {
				probs = append(probs, Problem{Pos: Position{File: name}, Rule: "one-platform", Msg: "a second platform file"})
				continue
			}
			var p Platform
			if err := decodeValue(value, &p); err != nil {
				probs = append(probs, Problem{Pos: Position{File: name}, Rule: "decode", Msg: err.Error()})
				continue
			}
			p.doc = doc
			set.Platform = &p
		case kind == "Module":
			var m Module
			if err := decodeValue(value, &m); err != nil {
				probs = append(probs, Problem{Pos: Position{File: name}, Rule: "decode", Msg: err.Error()})
				continue
			}
			m.doc = doc
			set.Modules = append(set.Modules, &m)
		}
	}
	if set.Platform == nil && !hasFile(probs, PlatformFile) {
		probs = append(probs, Problem{Pos: Position{File: PlatformFile}, Rule: "platform-missing",
			Msg: "no platform.yaml among the manifests", Fix: "add manifests/platform.yaml with at least the local profile (see docs/manifest.md)"})
	}
	sort.Slice(set.Modules, func(i, j int) bool { return set.Modules[i].Metadata.Name < set.Modules[j].Metadata.Name })
	if len(probs) == 0 {
		probs = expandAudits(set)
	}
	if len(probs) == 0 {
		probs = validateSet(set)
	}
	if len(probs) > 0 {
		return set, probs.sorted()
	}
	return set, nil
}

func hasFile(ps Problems, base string) bool {
	for _, p := range ps {
		if filepath.Base(p.Pos.File) == base {
			return true
		}
	}
	return false
}

// parse reads YAML into a node tree (rejecting syntax errors, duplicate keys, alias bombs,
// non-string keys and excessive nesting), indexes positions and converts it to JSON values.
func parse(name string, data []byte) (*document, any, Problems) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, Problems{{Pos: Position{File: name, Line: 1, Col: 1}, Rule: "yaml", Msg: "the file is empty", Fix: "write a manifest, or delete the file"}}
		}
		return nil, nil, Problems{yamlProblem(name, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, Problems{{Pos: Position{File: name, Line: extra.Line, Col: extra.Column}, Rule: "one-document",
			Msg: "a second YAML document in the file", Fix: "one manifest per file: move it to its own file"}}
	}
	doc := &document{file: name, pos: map[string]Position{}}
	var ps Problems
	value := toValue(doc, &root, "", 0, &ps)
	if len(ps) > 0 {
		return nil, nil, ps
	}
	if _, ok := value.(map[string]any); !ok {
		return nil, nil, Problems{{Pos: Position{File: name, Line: 1, Col: 1}, Rule: "yaml", Msg: "the document is not a mapping", Fix: "start with apiVersion: goplt/v1"}}
	}
	return doc, value, nil
}

// yamlProblem turns yaml.v3's "yaml: line N: msg" errors into positioned problems.
func yamlProblem(name string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	fix := "fix the YAML syntax"
	if strings.Contains(msg, "tab") {
		fix = "indent with spaces; YAML does not allow tabs"
	} else if strings.Contains(msg, "already defined") {
		fix = "remove or rename the repeated key"
	}
	return Problem{Pos: Position{File: name, Line: line, Col: 1}, Rule: "yaml", Msg: msg, Fix: fix}
}

// toValue converts a node to JSON-compatible values, recording each value's position under
// its JSON pointer. Aliases are refused: manifests are small and explicit, and refusing them
// removes alias bombs outright.
func toValue(doc *document, n *yaml.Node, ptr string, depth int, ps *Problems) any {
	pos := Position{File: doc.file, Line: n.Line, Col: n.Column}
	if depth > maxDepth {
		*ps = append(*ps, Problem{Pos: pos, Rule: "yaml", Msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth), Fix: "manifests are flat; remove the excess nesting"})
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return toValue(doc, n.Content[0], ptr, depth, ps)
	case yaml.AliasNode:
		*ps = append(*ps, Problem{Pos: pos, Rule: "yaml", Msg: "YAML aliases (*name) are not allowed in manifests", Fix: "write the value out"})
		return nil
	case yaml.MappingNode:
		doc.pos[ptr] = pos
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				*ps = append(*ps, Problem{Pos: Position{File: doc.file, Line: k.Line, Col: k.Column}, Rule: "yaml", Msg: "keys must be plain strings (no merge keys or complex keys)"})
				continue
			}
			if _, dup := m[k.Value]; dup {
				first := doc.pos[ptr+"/"+escapePointer(k.Value)]
				*ps = append(*ps, Problem{Pos: Position{File: doc.file, Line: k.Line, Col: k.Column}, Rule: "yaml",
					Msg: fmt.Sprintf("mapping key %q already defined at line %d", k.Value, first.Line), Fix: "remove or rename the repeated key"})
				continue
			}
			child := ptr + "/" + escapePointer(k.Value)
			doc.pos[child] = Position{File: doc.file, Line: k.Line, Col: k.Column}
			m[k.Value] = toValue(doc, v, child, depth+1, ps)
			doc.pos[child] = Position{File: doc.file, Line: k.Line, Col: k.Column}
		}
		return m
	case yaml.SequenceNode:
		doc.pos[ptr] = pos
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = toValue(doc, c, ptr+"/"+strconv.Itoa(i), depth+1, ps)
		}
		return s
	default:
		if _, ok := doc.pos[ptr]; !ok {
			doc.pos[ptr] = pos
		}
		var v any
		if err := n.Decode(&v); err != nil {
			*ps = append(*ps, Problem{Pos: pos, Rule: "yaml", Msg: err.Error()})
			return nil
		}
		switch x := v.(type) {
		case int:
			return json.Number(strconv.Itoa(x))
		case float64:
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		case string, bool, nil:
			return x
		default:
			// Timestamps and other YAML-only types: keep the text, the schema decides.
			return n.Value
		}
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

var (
	schemaOnce sync.Once
	compiled   map[string]*jsonschema.Schema
	schemaErr  error
)

func loadSchemas() (map[string]*jsonschema.Schema, error) {
	schemaOnce.Do(func() {
		c := jsonschema.NewCompiler()
		names := []string{"module.schema.json", "platform.schema.json"}
		for _, n := range names {
			b, err := schemas.FS.ReadFile(n)
			if err != nil {
				schemaErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				schemaErr = fmt.Errorf("schema %s: %w", n, err)
				return
			}
			if err := c.AddResource(n, doc); err != nil {
				schemaErr = err
				return
			}
		}
		compiled = map[string]*jsonschema.Schema{}
		for _, n := range names {
			s, err := c.Compile(n)
			if err != nil {
				schemaErr = fmt.Errorf("schema %s: %w", n, err)
				return
			}
			compiled[n] = s
		}
	})
	return compiled, schemaErr
}

var printer = message.NewPrinter(language.English)

func validateSchema(doc *document, schemaName string, value any) Problems {
	ss, err := loadSchemas()
	if err != nil {
		return Problems{{Pos: Position{File: doc.file}, Rule: "schema", Msg: "internal: " + err.Error()}}
	}
	err = ss[schemaName].Validate(value)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		if err != nil {
			return Problems{{Pos: Position{File: doc.file}, Rule: "schema", Msg: err.Error()}}
		}
		return nil
	}
	var ps Problems
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := ""
		for _, s := range e.InstanceLocation {
			ptr += "/" + escapePointer(s)
		}
		msg := e.ErrorKind.LocalizedString(printer)
		where := ptr
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok && len(ap.Properties) > 0 {
			where = ptr + "/" + escapePointer(ap.Properties[0]) // point at the unknown key itself
		}
		if ptr != "" {
			msg = "at " + strings.TrimPrefix(strings.ReplaceAll(ptr, "/", "."), ".") + ": " + msg
		}
		key := ptr + msg
		if seen[key] {
			return
		}
		seen[key] = true
		ps = append(ps, Problem{Pos: doc.at(where), Rule: "schema", Msg: msg, Fix: "see " + "schemas/" + schemaName + " and docs/manifest.md"})
	}
	walk(ve)
	return ps
}

// decodeValue fills a typed struct from the validated JSON value.
func decodeValue(value any, out any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return err
	}
	y := yaml.Node{}
	if err := yaml.Unmarshal(b, &y); err != nil {
		return err
	}
	return y.Decode(out)
}
