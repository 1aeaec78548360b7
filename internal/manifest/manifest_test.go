package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const platformYAML = `apiVersion: goplt/v1
kind: Platform
metadata:
  name: test
spec:
  gateway: gateway
  profiles:
    local:
      pubsub:
        type: pubsub.kafka
        metadata:
          brokers: {envRef: GOPLT_KAFKA_BROKERS}
      devCallers: [console]
`

// A valid base set with a diamond: gateway -> blog, billing -> identity.
var baseModules = map[string]string{
	"identity": `apiVersion: goplt/v1
kind: Module
metadata: {name: identity, version: 1.4.0}
spec:
  app: {id: identity, build: ./apps/identity}
  database: {schema: identity, migrations: apps/identity/migrations}
  permissions:
    - {name: identity.user.read}
  roles:
    - {name: identity.admin, permissions: [identity.user.read]}
  routes:
    - {method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}
  events:
    publishes:
      - {topic: identity.user.created, schema: schemas/events/identity.user.created.v1.json}
`,
	"blog": `apiVersion: goplt/v1
kind: Module
metadata: {name: blog, version: 1.0.0}
spec:
  app: {id: blog, build: ./apps/blog}
  dependsOn:
    - {name: identity, version: ">=1.0.0 <2.0.0"}
  permissions:
    - {name: blog.post.create}
  routes:
    - {method: POST, path: /api/v1/blog/posts, permission: blog.post.create}
    - {method: GET, path: "/api/v1/blog/posts/{id}", public: true}
  events:
    subscribes:
      - {topic: identity.user.created, route: /events/user-created}
`,
	"billing": `apiVersion: goplt/v1
kind: Module
metadata: {name: billing, version: 0.3.0}
spec:
  app: {id: billing, build: ./apps/billing}
  dependsOn:
    - {name: identity, version: "^1.2"}
`,
	"gateway": `apiVersion: goplt/v1
kind: Module
metadata: {name: gateway, version: 1.0.0}
spec:
  app: {id: gateway, build: ./apps/gateway, port: 8080}
  dependsOn:
    - {name: blog, version: ">=1.0.0"}
    - {name: billing, version: ">=0.1.0"}
`,
}

func testRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"manifests", "apps/identity/migrations", "schemas/events"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, schema := range map[string]string{
		"identity.user.created.v1.json": `{"type":"object"}`,
		// v2 keeps what v1 readers need; v3 drops a field they may read.
		"identity.user.created.v2.json": `{"type":"object","properties":{"email":{"type":"string"}}}`,
		"identity.user.created.v3.json": `{"type":"object","properties":{"name":{"type":"string"}}}`,
	} {
		_ = os.WriteFile(filepath.Join(root, "schemas/events", name), []byte(schema), 0o644)
	}
	return root
}

func files(mods map[string]string) map[string][]byte {
	out := map[string][]byte{"manifests/platform.yaml": []byte(platformYAML)}
	for name, doc := range mods {
		out["manifests/"+name+".yaml"] = []byte(doc)
	}
	return out
}

// with2 is the base set with two documents replaced.
func with2(name1, doc1, name2, doc2 string) map[string]string {
	out := with(name1, doc1)
	out[name2] = doc2
	return out
}

func with(name, doc string) map[string]string {
	out := map[string]string{}
	for k, v := range baseModules {
		out[k] = v
	}
	out[name] = doc
	return out
}

// posOf finds where marker starts in file (1-based line and column).
func posOf(t *testing.T, file, doc, marker string) string {
	t.Helper()
	for i, line := range strings.Split(doc, "\n") {
		if c := strings.Index(line, marker); c >= 0 {
			return fmt.Sprintf("%s:%d:%d", file, i+1, c+1)
		}
	}
	t.Fatalf("marker %q not in %s", marker, file)
	return ""
}

func TestValidSetLoads(t *testing.T) {
	set, err := Load(files(baseModules), testRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Order(), ","); got != "identity,billing,blog,gateway" {
		t.Errorf("order = %s", got)
	}
}

func TestRules(t *testing.T) {
	edit := func(name, from, to string) map[string]string {
		doc := baseModules[name]
		if !strings.Contains(doc, from) {
			panic("fixture lacks " + from)
		}
		return with(name, strings.Replace(doc, from, to, 1))
	}
	cases := []struct {
		name   string
		mods   map[string]string
		file   string // module whose file the problem is in
		marker string // text at the reported position
		want   string // message and rule
	}{
		{"unknown key", edit("blog", "  app: {id: blog", "  colour: red\n  app: {id: blog"), "blog", "colour:",
			"at spec: additional properties 'colour' not allowed [schema]"},
		{"wrong type", edit("billing", "version: 0.3.0", "version: [0, 3]"), "billing", "version: [0, 3]",
			"at metadata.version: got array, want string [schema]"},
		{"semver", edit("billing", "version: 0.3.0", `version: "0.3"`), "billing", `version: "0.3"`,
			`version "0.3" is not a semantic version`},
		{"bad constraint", edit("blog", `">=1.0.0 <2.0.0"`, `"around one"`), "blog", `version: "around one"`,
			`version constraint "around one" does not parse`},
		{"missing dependency", edit("blog", "name: identity, version", "name: identty, version"), "blog", "name: identty",
			`module blog depends on "identty", which no manifest defines [dependency-missing]`},
		{"unsatisfied dependency", edit("billing", `"^1.2"`, `"^1.5"`), "billing", `version: "^1.5"`,
			`identity 1.4.0 does not satisfy "^1.5" [dependency-version]`},
		{"cycle", edit("identity", "  database:", "  dependsOn:\n    - {name: gateway, version: \">=1.0.0\"}\n  database:"), "billing", "dependsOn:",
			"dependency cycle: billing -> identity -> gateway -> billing [dependency-cycle]"},
		{"permission name", edit("blog", "name: blog.post.create}", "name: blog.create}"), "blog", "name: blog.create}",
			`permission "blog.create" is not <module>.<resource>.<action> [permission-name]`},
		{"permission prefix", edit("blog", "name: blog.post.create}", "name: news.post.create}"), "blog", "name: news.post.create}",
			`permission "news.post.create" does not start with the module name "blog" [permission-prefix]`},
		{"role grants undeclared", edit("identity", "permissions: [identity.user.read]", "permissions: [identity.user.delete]"), "identity", "identity.user.delete",
			`role identity.admin grants "identity.user.delete", which no module declares [role-permission]`},
		{"route without access", edit("blog", ", public: true}", "}"), "blog", `{method: GET, path: "/api/v1/blog`,
			"route GET /api/v1/blog/posts/{id} has neither a permission nor public: true [route-access]"},
		{"route overlap", edit("blog", "/api/v1/blog/posts/{id}", "/api/v1/users/me"), "identity", `path: "/api/v1/users/{id}"`,
			"route GET /api/v1/users/{id} overlaps GET /api/v1/users/me of module blog (manifests/blog.yaml:12:21): one request could match both [route-overlap]"},
		{"route path grammar", edit("identity", `path: "/api/v1/users/{id}"`, `path: "/api/v1/users/{user-id}"`), "identity", `path: "/api/v1/users/{user-id}"`,
			`route path "/api/v1/users/{user-id}": segment "{user-id}" is not a literal, a {name} or a final {name...} (a name is a Go identifier) [route-path]`},
		{"internal route outside /internal/", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: GET, path: "/api/v1/users/{id}", callers: [blog]}`), "identity", `path: "/api/v1/users/{id}", callers`,
			"internal route GET /api/v1/users/{id} must start with /internal/, so access control can deny the prefix [route-internal-path]"},
		{"internal route caller unknown", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: GET, path: "/internal/users/{id}", callers: [blogg]}`), "identity", "blogg]",
			`route GET /internal/users/{id}: caller "blogg" is not the app id of any module [route-caller]`},
		{"internal route both", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: GET, path: "/internal/users/{id}", callers: [blog], public: true}`), "identity", `{method: GET, path: "/internal/users/{id}"`,
			"route GET /internal/users/{id} is internal (callers) and also public or requires a permission [route-access]"},
		{"/internal/ without callers", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: GET, path: "/internal/users/{id}", permission: identity.user.read}`), "identity", `path: "/internal/users/{id}"`,
			"route GET /internal/users/{id} is under /internal/ but names no callers [route-internal-path]"},
		{"topic without publisher", edit("blog", "topic: identity.user.created", "topic: identity.user.removed"), "blog", "topic: identity.user.removed",
			`no module publishes topic "identity.user.removed" [topic-no-publisher]`},
		{"two publishers", edit("blog", "  events:\n    subscribes:", "  events:\n    publishes:\n      - {topic: identity.user.created, schema: schemas/events/identity.user.created.v1.json}\n    subscribes:"), "identity", "topic: identity.user.created",
			`topic "identity.user.created" is already published by module blog [topic-one-publisher]`},
		{"missing event schema", edit("identity", "identity.user.created.v1.json", "identity.user.gone.v1.json"), "identity", "schema: schemas/events/identity.user.gone",
			"event schema schemas/events/identity.user.gone.v1.json: cannot read it (no such file or directory) [event-schema]"},
		{"accepts a version nobody publishes", edit("blog", "route: /events/user-created}", "route: /events/user-created, accepts: [2]}"), "blog", "2]",
			"accepts version 2 of identity.user.created, but module identity publishes version 1 [event-version]"},
		{"accepts a version without a schema", with2(
			"identity", strings.Replace(baseModules["identity"], "schema: schemas/events/identity.user.created.v1.json", "version: 5, schema: schemas/events/identity.user.created.v5.json", 1),
			"blog", strings.Replace(baseModules["blog"], "route: /events/user-created}", "route: /events/user-created, accepts: [4]}", 1)), "blog", "4]",
			"accepts version 4 of identity.user.created, which nobody publishes (no schema schemas/events/identity.user.created.v4.json) [event-version]"},
		{"publisher breaks an accepted version", with2(
			"identity", strings.Replace(baseModules["identity"], "schema: schemas/events/identity.user.created.v1.json", "version: 3, schema: schemas/events/identity.user.created.v3.json", 1),
			"blog", strings.Replace(baseModules["blog"], "route: /events/user-created}", "route: /events/user-created, accepts: [2]}", 1)), "blog", "2]",
			"accepts version 2 of identity.user.created, but version 3 published by module identity breaks it: field-removed at /email: property email was removed [event-compat]"},
		{"schema not named for its version", edit("identity", "schema: schemas/events/identity.user.created.v1.json", "version: 2, schema: schemas/events/identity.user.created.v1.json"), "identity", "schema: schemas/events/identity.user.created.v1.json",
			"schema schemas/events/identity.user.created.v1.json is not named for version 2 [event-schema-version]"},
		{"app id clash", edit("billing", "id: billing,", "id: blog,"), "blog", "id: blog,",
			`app id "blog" is also used by module`},
		{"port clash", edit("billing", "build: ./apps/billing}", "build: ./apps/billing, port: 8080}"), "gateway", "port: 8080",
			"port 8080 is also used by module"},
		{"migrations folder", edit("identity", "apps/identity/migrations", "apps/identity/missing"), "identity", "migrations: apps/identity/missing",
			"migrations folder apps/identity/missing does not exist [migrations-folder]"},
		{"migrations outside the repository", edit("identity", "apps/identity/migrations", "apps/../../../etc"), "identity", "migrations: apps/../../../etc",
			"apps/../../../etc leaves the repository [path-in-repository]"},
		{"absolute migrations folder", edit("identity", "apps/identity/migrations", "/var/lib/postgresql"), "identity", "migrations: /var/lib/postgresql",
			"/var/lib/postgresql is absolute: leaves the repository [path-in-repository]"},
		{"build outside the repository", edit("billing", "build: ./apps/billing", "build: ./../elsewhere/billing"), "billing", "build: ./../elsewhere",
			"./../elsewhere/billing leaves the repository [path-in-repository]"},
		{"event schema outside the repository", edit("identity", "schema: schemas/events/identity.user.created.v1.json", "schema: ../../identity.user.created.v1.json"), "identity", "schema: ../../identity",
			"../../identity.user.created.v1.json leaves the repository [path-in-repository]"},
		{"request schema on a GET", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read, request: schemas/events/identity.user.created.v1.json}`), "identity", "request: schemas",
			"route GET /api/v1/users/{id} names a request schema [route-request]"},
		{"missing response schema", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read, response: {schema: schemas/http/missing.v1.json}}`), "identity", "schema: schemas/http/missing",
			"schema schemas/http/missing.v1.json: cannot read it (no such file or directory) [api-schema]"},
		{"request schema outside the repository", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: PUT, path: "/api/v1/users/{id}", permission: identity.user.read, request: ../x.v1.json}`), "identity", "request: ../x",
			"../x.v1.json leaves the repository [path-in-repository]"},
		{"request schema not versioned", edit("identity", `{method: GET, path: "/api/v1/users/{id}", permission: identity.user.read}`, `{method: PUT, path: "/api/v1/users/{id}", permission: identity.user.read, request: schemas/x.json}`), "identity", "request: schemas/x.json",
			"[schema]"},
		{"tabs", edit("billing", "spec:\n  app", "spec:\n\tapp"), "billing", "\tapp",
			"found character that cannot start any token [yaml]"},
		{"duplicate key", edit("billing", "  app: {id: billing", "  app: {id: x}\n  app: {id: billing"), "billing", "app: {id: billing",
			`mapping key "app" already defined at line 5 [yaml]`},
		{"alias", edit("billing", "metadata: {name: billing, version: 0.3.0}", "metadata: &m {name: billing, version: 0.3.0}\nx: *m"), "billing", "*m",
			"YAML aliases (*name) are not allowed in manifests [yaml]"},
		{"deep nesting", edit("billing", "kind: Module", "kind: Module\nx: "+strings.Repeat("[", 40)+strings.Repeat("]", 40)), "billing", "x: [[[",
			"nesting deeper than 32 levels [yaml]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := testRoot(t)
			_, err := Load(files(c.mods), root)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			file := "manifests/" + c.file + ".yaml"
			doc := c.mods[c.file]
			where := posOf(t, file, doc, c.marker)
			found := false
			for _, p := range ps {
				s := p.String()
				if strings.Contains(s, c.want) {
					found = true
					// yaml.v3 reports syntax errors (tabs) by line only; the nesting error is at the
					// innermost bracket: compare those by line.
					got := p.Pos.String()
					if c.name == "tabs" || c.name == "deep nesting" {
						where = where[:strings.LastIndexByte(where, ':')]
						got = got[:strings.LastIndexByte(got, ':')]
					}
					if got != where {
						t.Errorf("problem at %s, want %s", p.Pos, where)
					}
					if p.Fix == "" {
						t.Errorf("problem has no fix: %s", s)
					}
				}
			}
			if !found {
				t.Errorf("no problem contains %q; got:\n%v", c.want, ps)
			}
		})
	}
}

// All problems of a run are reported, not only the first.
func TestAllProblemsReported(t *testing.T) {
	mods := with("billing", strings.Replace(strings.Replace(baseModules["billing"], "0.3.0", `"0.3"`, 1), `"^1.2"`, `"^9"`, 1))
	mods["blog"] = strings.Replace(baseModules["blog"], ", public: true}", "}", 1)
	_, err := Load(files(mods), testRoot(t))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) < 3 {
		t.Fatalf("want at least 3 problems, got %v", err)
	}
}

func TestOversizeFileRefused(t *testing.T) {
	root := testRoot(t)
	big := "apiVersion: goplt/v1\n# " + strings.Repeat("x", MaxFileSize) + "\n"
	if err := os.WriteFile(filepath.Join(root, "manifests", "big.yaml"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(filepath.Join(root, "manifests"), root)
	if err == nil || !strings.Contains(err.Error(), "manifests are limited to") {
		t.Fatalf("error = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	for _, d := range baseModules {
		f.Add([]byte(d))
	}
	f.Add([]byte("a: &a [*a, *a]"))
	f.Add([]byte("\t- x"))
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := map[string][]byte{"manifests/platform.yaml": []byte(platformYAML), "manifests/x.yaml": data}
		set, err := Load(fs, root)
		if err == nil && set == nil {
			t.Fatal("nil set without error")
		}
	})
}

// A profile may only name component types goplt's daprd can include (internal/sidecar), for
// the building blocks some module uses.
func TestProfileComponentsMustBeInTheSidecarCatalogue(t *testing.T) {
	base := with("blog", baseModules["blog"])
	// A state store no module uses is not checked: it emits nothing.
	fs := files(base)
	fs["manifests/platform.yaml"] = []byte(strings.Replace(platformYAML, "      devCallers:", "      state: {type: state.redis, version: v1}\n      devCallers:", 1))
	if _, err := Load(fs, testRoot(t)); err != nil {
		t.Fatalf("an unused state store was refused: %v", err)
	}
	stateful := with("blog", strings.Replace(baseModules["blog"], "  permissions:", "  state: [cache]\n  permissions:", 1))
	for _, c := range []struct {
		mods                   map[string]string
		from, to, marker, want string
	}{
		{base, "type: pubsub.kafka", "type: pubsub.redis", "pubsub:",
			"profile local: goplt's daprd cannot include pubsub component pubsub.redis (it can include pubsub.kafka/v1) [sidecar-component]"},
		{stateful, "      devCallers:", "      state: {type: state.postgresql, version: v1}\n      devCallers:", "state:",
			"profile local: goplt's daprd cannot include state component state.postgresql/v1 (it can include state.postgresql/v2) [sidecar-component]"},
		{base, "      devCallers:", "      nameResolution: {component: sqlite}\n      devCallers:", "nameResolution:",
			"profile local: goplt's daprd cannot include nameresolution component sqlite"},
	} {
		fs := files(c.mods)
		plat := strings.Replace(platformYAML, c.from, c.to, 1)
		fs["manifests/platform.yaml"] = []byte(plat)
		_, err := Load(fs, testRoot(t))
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("%s: want Problems, got %v", c.to, err)
		}
		line := strings.Count(plat[:strings.Index(plat, c.marker)], "\n") + 1
		found := false
		for _, p := range ps {
			if strings.Contains(p.String(), c.want) {
				found = true
				if p.Pos.File != "manifests/platform.yaml" || p.Pos.Line != line {
					t.Errorf("%s: problem at %s, want line %d", c.to, p.Pos, line)
				}
				if !strings.Contains(p.Fix, "internal/sidecar.Catalogue") {
					t.Errorf("%s: fix does not say what to do: %q", c.to, p.Fix)
				}
			}
		}
		if !found {
			t.Errorf("%s: no problem %q in\n%v", c.to, c.want, ps)
		}
	}
}

// The remaining rules: exact rule id and message, located in the right file and line.
func TestMoreRules(t *testing.T) {
	edit := func(name, from, to string) map[string]string {
		if !strings.Contains(baseModules[name], from) {
			panic("fixture lacks " + from)
		}
		return with(name, strings.Replace(baseModules[name], from, to, 1))
	}
	cases := []struct {
		name   string
		files  map[string][]byte
		file   string
		marker string
		want   string
	}{
		{"module unique", files(with("billing2", strings.Replace(baseModules["billing"], "id: billing", "id: billing2", 1))), "manifests/billing2.yaml", "name: billing",
			`module "billing" is also defined in manifests/billing.yaml [module-unique]`},
		{"schema unique", files(edit("blog", "  permissions:", "  database: {schema: identity}\n  permissions:")), "manifests/identity.yaml", "database: {schema: identity,",
			`database schema "identity" is also used by module blog [schema-unique]`},
		{"permission unique", files(edit("blog", "    - {name: blog.post.create}", "    - {name: blog.post.create}\n    - {name: blog.post.create}")), "manifests/blog.yaml", "    - {name: blog.post.create}\n",
			`permission "blog.post.create" is already declared by module blog [permission-unique]`},
		{"role name", files(edit("identity", "name: identity.admin,", "name: admin,")), "manifests/identity.yaml", "name: admin,",
			`role "admin" is not identity.<role> [role-name]`},
		{"role unique", files(edit("identity", "  routes:", "    - {name: identity.admin, permissions: []}\n  routes:")), "manifests/identity.yaml", "    - {name: identity.admin, permissions: []}",
			`role "identity.admin" is declared twice [role-unique]`},
		{"dependency self", files(edit("billing", "name: identity, version", "name: billing, version")), "manifests/billing.yaml", `{name: billing, version: "^1.2"}`,
			"module billing depends on itself [dependency-self]"},
		{"topic prefix", files(edit("identity", "topic: identity.user.created", "topic: users.created")), "manifests/identity.yaml", "topic: users.created",
			`published topic "users.created" does not start with the module name [topic-prefix]`},
		{"subscription route", files(edit("blog", "route: /events/user-created", "route: /api/v1/blog/posts")), "manifests/blog.yaml", "route: /api/v1/blog/posts",
			"subscription route /api/v1/blog/posts is also an HTTP route or another subscription's [subscription-route]"},
		{"app run", files(edit("billing", ", build: ./apps/billing}", "}")), "manifests/billing.yaml", "app: {id: billing}",
			"app says neither how to build nor how to run it [app-run]"},
		{"gateway app", files(edit("gateway", "id: gateway,", "id: edge,")), "manifests/platform.yaml", "gateway: gateway",
			`gateway "gateway" is not the app id of any module [gateway-app]`},
		{"dev caller", files(edit("billing", "id: billing,", "id: console,")), "manifests/platform.yaml", "devCallers: [console]",
			`dev caller "console" is also a module's app id [dev-caller]`},
		{"one document", files(edit("billing", "kind: Module", "kind: Module\n---\nkind: Module")), "manifests/billing.yaml", "---",
			"a second YAML document in the file [one-document]"},
		{"replicas with volumes", files(edit("billing", ", build: ./apps/billing}", ", build: ./apps/billing, replicas: 2, volumes: [{name: data}]}")), "manifests/billing.yaml", "app: {id: billing",
			"2 replicas cannot share volumes: each is one folder, mounted by one pod at a time [replicas-volumes]"},
		{"volume unique", files(edit("billing", ", build: ./apps/billing}", ", build: ./apps/billing, volumes: [{name: data}, {name: data, size: 2Gi}]}")), "manifests/billing.yaml", "app: {id: billing",
			`volume "data" is declared twice [volume-unique]`},
		{"empty file", files(with("empty", "")), "manifests/empty.yaml", "",
			"the file is empty [yaml]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.files, testRoot(t))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			line := 1
			if c.marker != "" {
				doc := string(c.files[c.file])
				i := strings.Index(doc, c.marker)
				if i < 0 {
					t.Fatalf("marker %q not in %s", c.marker, c.file)
				}
				line = strings.Count(doc[:i], "\n") + 1
				if strings.HasPrefix(c.marker, "    - {name: blog.post.create}\n") {
					line++ // the second, repeated entry
				}
			}
			for _, p := range ps {
				if strings.Contains(p.String(), c.want) {
					if p.Pos.File != c.file || p.Pos.Line != line {
						t.Errorf("problem at %s, want %s line %d", p.Pos, c.file, line)
					}
					return
				}
			}
			t.Errorf("no problem contains %q; got:\n%v", c.want, ps)
		})
	}
	noPlatform := files(baseModules)
	delete(noPlatform, "manifests/platform.yaml")
	if _, err := Load(noPlatform, testRoot(t)); err == nil || !strings.Contains(err.Error(), "no platform.yaml among the manifests [platform-missing]") {
		t.Errorf("missing platform: %v", err)
	}
}

// Hostile YAML fails fast with a clear problem and never expands: a billion-laughs document
// (aliases are refused where they appear, before any expansion) and 20,000 levels of nesting.
func TestYAMLBombsAreRefused(t *testing.T) {
	laughs := "a: &a [\"lol\"]\n"
	prev := "a"
	for i := 1; i <= 9; i++ {
		name := fmt.Sprintf("l%d", i)
		laughs += fmt.Sprintf("%s: &%s [%s]\n", name, name, strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ","))
		prev = name
	}
	deep := "x: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
	for _, c := range []struct{ name, doc, want string }{
		{"billion laughs", laughs, "manifests/bomb.yaml:2:"},
		{"deep nesting", deep, "manifests/bomb.yaml: exceeded max depth"},
	} {
		fs := files(with("bomb", c.doc))
		_, err := Load(fs, testRoot(t))
		var ps Problems
		if !errors.As(err, &ps) || !strings.Contains(ps.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// A subscriber may keep reading an older version while the published one is compatible.
func TestOlderCompatibleVersionIsAccepted(t *testing.T) {
	mods := with2(
		"identity", strings.Replace(baseModules["identity"], "schema: schemas/events/identity.user.created.v1.json", "version: 2, schema: schemas/events/identity.user.created.v2.json", 1),
		"blog", strings.Replace(baseModules["blog"], "route: /events/user-created}", "route: /events/user-created, accepts: [1]}", 1))
	if _, err := Load(files(mods), testRoot(t)); err != nil {
		t.Fatalf("v1 reader of compatible v2: %v", err)
	}
}

// A path that stays inside the repository by its text but leaves it through a symbolic link
// is refused too.
func TestPathsThroughSymlinksStayInside(t *testing.T) {
	root := testRoot(t)
	outside := t.TempDir()
	mig := filepath.Join(root, "apps/identity/migrations")
	if err := os.Remove(mig); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, mig); err != nil {
		t.Fatal(err)
	}
	_, err := Load(files(baseModules), root)
	var ps Problems
	if !errors.As(err, &ps) || !strings.Contains(err.Error(), "apps/identity/migrations resolves to "+outside+", which leaves the repository [path-in-repository]") {
		t.Fatalf("a migrations folder linked outside: %v", err)
	}
	// A link that stays inside is fine.
	if err := os.Remove(mig); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "db/identity"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "db/identity"), mig); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(files(baseModules), root); err != nil {
		t.Fatalf("a migrations folder linked inside: %v", err)
	}
}

// audit: true on a publication gives the auditor a subscription to it; without an auditor, or
// with the topic also subscribed by hand, it is an error at the publication.
func TestAuditedTopicsReachTheAuditor(t *testing.T) {
	audited := strings.Replace(baseModules["identity"], "schemas/events/identity.user.created.v1.json}", "schemas/events/identity.user.created.v1.json, audit: true}", 1)
	_, err := Load(files(with("identity", audited)), testRoot(t))
	if err == nil || !strings.Contains(err.Error(), "topic identity.user.created asks to be audited, but no module declares events.audits [audit-no-auditor]") {
		t.Fatalf("no auditor: %v", err)
	}
	auditor := strings.Replace(baseModules["billing"], "  dependsOn:", "  events:\n    audits: {deadLetterTopic: billing.audit.dead, bulk: {maxMessages: 50}}\n  dependsOn:", 1)
	set, err := Load(files(with2("identity", audited, "billing", auditor)), testRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	subs := set.Module("billing").Spec.Events.Subscribes
	if len(subs) != 1 || subs[0].Topic != "identity.user.created" || subs[0].Route != "/events/identity.user.created" ||
		subs[0].DeadLetterTopic != "billing.audit.dead" || subs[0].Bulk == nil || subs[0].Bulk.MaxMessages != 50 {
		t.Fatalf("auditor's subscriptions: %+v", subs)
	}
	if pos := set.Module("billing").PosOf("/spec/events/subscribes/0"); pos.File != "manifests/identity.yaml" {
		t.Errorf("the added subscription is reported at %v, want the publication in identity.yaml", pos)
	}
	byHand := strings.Replace(auditor, "  events:\n", "  events:\n    subscribes:\n      - {topic: identity.user.created, route: /events/x}\n", 1)
	_, err = Load(files(with2("identity", audited, "billing", byHand)), testRoot(t))
	if err == nil || !strings.Contains(err.Error(), "[audit-subscribed]") {
		t.Fatalf("subscribed by hand too: %v", err)
	}
}
