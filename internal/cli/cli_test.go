package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/repo"
)

func run(args ...string) (int, string, string) {
	var out, errb strings.Builder
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"bogus"}, ExitUsage, `unknown command "bogus"`},
		{[]string{"infra", "up", "--nope"}, ExitUsage, "unknown flag: --nope"},
		{[]string{"infra"}, ExitUsage, "infra needs a subcommand"},
		{[]string{"version", "extra"}, ExitUsage, "unknown command"},
		{[]string{"infra", "up", "--postgres-port", "x"}, ExitUsage, "invalid argument"},
		{[]string{"infra", "status", "--home", "/nonexistent/goplt-home"}, ExitUnhealthy, "not running"},
		{[]string{"run", "--plan", "/nonexistent/plan.yaml"}, ExitFailure, "read run plan"},
		{[]string{"run", "--except", "nope"}, ExitUsage, "--except nope: no such app"},
		{[]string{"run", "--except", "console"}, ExitUsage, "a sidecar without an app"},
		{[]string{"new", "module", "Bad-Name"}, ExitUsage, "lowercase letters"},
		{[]string{"events", "publish", "notes.note.created", "--data", "{}"}, ExitUsage, "--as <app> is required"},
		{[]string{"events", "publish", "notes.note.created", "--as", "notes"}, ExitUsage, "--data is required"},
		{[]string{"events", "publish", "notes.note.created", "--as", "notes", "--data", "{nope"}, ExitUsage, "not valid JSON"},
		{[]string{"events", "publish", "notes.note.created", "--as", "nope", "--data", "{}"}, ExitUsage, `no app "nope"`},
		{[]string{"events", "publish", "notes.note.created", "--as", "blog", "--data", "{}"}, ExitUsage, "blog does not publish notes.note.created (manifests/blog.yaml)"},
		{[]string{"events", "publish", "notes.note.created", "--as", "notes", "--data", `{"noteId":"x"}`}, ExitUsage, "breaks notes.note.created's contract"},
		{[]string{"events", "tail"}, ExitUsage, "accepts 1 arg"},
		{[]string{"version"}, ExitOK, ""},
	} {
		code, _, stderr := run(c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("goplt %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.err)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	check := func(path ...string) {
		code, out, stderr := run(append(path, "--help")...)
		if code != ExitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("goplt %s --help: exit %d, %q %q", strings.Join(path, " "), code, out, stderr)
		}
	}
	for _, c := range newRoot(&env{}).Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		check(c.Name())
		for _, sub := range c.Commands() {
			if !sub.Hidden {
				check(c.Name(), sub.Name())
			}
		}
	}
}

func TestAuthRotateKey(t *testing.T) {
	home := t.TempDir()
	code, _, stderr := run("auth", "rotate-key", "--home", home)
	if code != ExitFailure || !strings.Contains(stderr, "start the platform once") {
		t.Fatalf("rotate without secrets: exit %d %q", code, stderr)
	}
	if _, err := localsecrets.Ensure(infra.SecretsFile(home), time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run("auth", "rotate-key", "--home", home)
	if code != ExitOK || !strings.Contains(out, "new signing key") {
		t.Fatalf("rotate: exit %d %q %q", code, out, stderr)
	}
	if code, _, _ := run("auth", "rotate-key", "--home", home, "--retain", "0s"); code != ExitUsage {
		t.Fatalf("--retain 0s: exit %d, want usage", code)
	}
}

// goplt run checks the manifests against the generated files before it starts anything: a
// cycle is reported with its line, and a manifest edited without `make generate` is named.
func TestRunRefusesBrokenOrStaleManifests(t *testing.T) {
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	copyManifests := func(edit func(name string, b []byte) []byte) string {
		dir := t.TempDir()
		files, _ := filepath.Glob(filepath.Join(root, "manifests", "*.yaml"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), edit(filepath.Base(f), b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	home := t.TempDir()
	cycle := copyManifests(func(name string, b []byte) []byte {
		if name == "identity.yaml" { // identity <-> auth
			return []byte(strings.Replace(string(b), "spec:\n", "spec:\n  dependsOn:\n    - {name: auth, version: \">=1.0.0\"}\n", 1))
		}
		return b
	})
	code, _, stderr := run("run", "--home", home, "--manifests", cycle)
	if code != ExitFailure || !strings.Contains(stderr, "auth.yaml:12:3: dependency cycle: auth -> identity -> auth [dependency-cycle]") {
		t.Errorf("cycle: exit %d, stderr %q", code, stderr)
	}
	stale := copyManifests(func(name string, b []byte) []byte {
		if name == "notes.yaml" {
			return []byte(strings.Replace(string(b), "description: Create a note}", "description: Create a new note}", 1))
		}
		return b
	})
	code, _, stderr = run("run", "--home", home, "--manifests", stale)
	if code != ExitFailure || !strings.Contains(stderr, "out of date with manifests/ (apps/notes/permissions/permissions_gen.go): run `make generate`") {
		t.Errorf("stale: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "infra.json")); err == nil {
		t.Error("the stack was started for broken manifests")
	}
}

// contracts diff against a folder (an older checkout): the same tree has no breaking change;
// a tree whose identity.user schema had one more field reports its removal, exit 1; so do a
// route that is gone, a permission changed and a request field newly required.
func TestContractsDiff(t *testing.T) {
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	old := t.TempDir()
	for _, d := range []string{"manifests", "schemas/events", "schemas/http"} {
		if err := os.MkdirAll(filepath.Join(old, d), 0o755); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, en := range entries {
			if en.IsDir() {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(root, d, en.Name()))
			_ = os.WriteFile(filepath.Join(old, d, en.Name()), b, 0o644)
		}
	}
	if code, out, errOut := run("contracts", "diff", old); code != 0 || !strings.Contains(out, "no breaking changes") {
		t.Fatalf("same tree: exit %d\n%s%s", code, out, errOut)
	}
	p := filepath.Join(old, "schemas/events/identity.user.v2.json")
	b, _ := os.ReadFile(p)
	b = []byte(strings.Replace(string(b), `"properties": {`, `"properties": {"nickname": {"type": "string"},`, 1))
	_ = os.WriteFile(p, b, 0o644)
	code, out, _ := run("contracts", "diff", old)
	if code != 1 || !strings.Contains(out, "BREAKING identity.user.created [version-reused]") {
		t.Fatalf("a field gone under the same version: exit %d\n%s", code, out)
	}

	// The HTTP API: the old tree had a route more, another permission on one, and an optional
	// field of blog's request body that is required now.
	edit := func(file, from, to string) {
		t.Helper()
		p := filepath.Join(old, file)
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), from) {
			t.Fatalf("%s has no %q", file, from)
		}
		_ = os.WriteFile(p, []byte(strings.Replace(string(b), from, to, 1)), 0o644)
	}
	edit("manifests/notes.yaml", "    - {method: POST, path: /notes,", "    - {method: GET, path: /notes/archive, permission: notes.note.read}\n    - {method: POST, path: /notes,")
	edit("manifests/billing.yaml", "path: /billing/subscription, permission: billing.subscription.read", "path: /billing/subscription, public: true")
	edit("schemas/http/blog.post.input.v1.json", `"required": ["title"]`, `"required": []`)
	code, out, _ = run("contracts", "diff", old)
	for _, want := range []string{
		"BREAKING GET /notes/archive [route-removed]",
		"BREAKING GET /billing/subscription [permission-changed] permission-changed at /: public before, now requires billing.subscription.read (manifests/billing.yaml)",
		"BREAKING POST /blog/posts [newly-required] newly-required at /request/title",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want 1 and %q in:\n%s", code, want, out)
		}
	}
}
