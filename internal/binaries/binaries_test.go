package binaries

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tool whose build module does not compile gives an error that quotes the compiler and
// names the module, and leaves nothing in the cache.
func TestBrokenBuildIsReported(t *testing.T) {
	root := t.TempDir()
	mod := filepath.Join(root, "tools", "broken")
	if err := os.MkdirAll(filepath.Join(mod, "cmd", "brokend"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(mod, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/broken\n\ngo 1.26\n")
	write("cmd/brokend/main.go", "package main\n\nfunc main() { undefinedThing() }\n")
	tool := Tool{Name: "brokend", Version: "0.0.1", Module: "tools/broken", Package: "example.com/broken/cmd/brokend"}
	var progress strings.Builder
	r := Resolver{CacheDir: filepath.Join(root, "cache"), RepoRoot: root, Progress: &progress, SkipPath: true}
	_, err := r.Ensure(context.Background(), tool)
	if err == nil {
		t.Fatal("broken build succeeded")
	}
	for _, want := range []string{"build brokend 0.0.1 failed", "undefined: undefinedThing", mod} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if !strings.Contains(progress.String(), "building brokend 0.0.1") {
		t.Errorf("no progress shown: %q", progress.String())
	}
	if _, err := os.Stat(r.CachePath(tool)); !os.IsNotExist(err) {
		t.Error("a failed build left a binary in the cache")
	}
}

// A good build lands in the cache, and the next Ensure finds it without building.
func TestBuildIsCachedByVersion(t *testing.T) {
	root := t.TempDir()
	mod := filepath.Join(root, "tools", "hello")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/hello\n\ngo 1.26\n"), 0o644)
	_ = os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() { println(\"hello 1.2.3\") }\n"), 0o644)
	tool := Tool{Name: "hello", Version: "1.2.3", Module: "tools/hello", Package: "example.com/hello"}
	r := Resolver{CacheDir: filepath.Join(root, "cache"), RepoRoot: root, SkipPath: true}
	ctx := context.Background()
	if _, err := r.Find(ctx, tool); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find before build: %v", err)
	}
	p, err := r.Ensure(ctx, tool)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(root, "cache", "hello-1.2.3") {
		t.Errorf("cached at %s", p)
	}
	// Remove the build module: a second Ensure must not need it.
	_ = os.RemoveAll(mod)
	if p2, err := r.Ensure(ctx, tool); err != nil || p2 != p {
		t.Fatalf("second Ensure rebuilt or failed: %s %v", p2, err)
	}
}

// On PATH, only a binary reporting the pinned version counts.
func TestPathBinaryNeedsMatchingVersion(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "fakeconsul")
	_ = os.WriteFile(script, []byte("#!/bin/sh\necho 'Consul v1.21.0'\n"), 0o755)
	t.Setenv("PATH", dir)
	r := Resolver{CacheDir: filepath.Join(dir, "cache")}
	tool := Tool{Name: "fakeconsul", Version: "1.22.0", VersionArgs: []string{"version"}}
	if _, err := r.Find(context.Background(), tool); !errors.Is(err, ErrNotFound) {
		t.Fatalf("wrong version accepted: %v", err)
	}
	_ = os.WriteFile(script, []byte("#!/bin/sh\necho 'Consul v1.22.0'\n"), 0o755)
	if p, err := r.Find(context.Background(), tool); err != nil || p != script {
		t.Fatalf("right version not found: %s %v", p, err)
	}
}

// A tool with Accepts takes any version in its range from PATH, and nothing outside it.
func TestPathBinaryInAcceptedRange(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "fakeconsul")
	t.Setenv("PATH", dir)
	r := Resolver{CacheDir: filepath.Join(dir, "cache")}
	tool := Tool{Name: "fakeconsul", Version: "1.22.0", VersionArgs: []string{"version"}, Accepts: ">= 1.14.0, < 2.0.0"}
	for out, ok := range map[string]bool{
		"Consul v1.21.4\nRevision 1234\nProtocol 2 spoken by default": true,
		"Consul v1.14.0": true,
		"Consul v1.22.0": true,
		"Consul v1.13.9\nProtocol 2 spoken by default": false,
		"Consul v2.0.0": false,
		"Consul v1.20":  false,
	} {
		_ = os.WriteFile(script, []byte("#!/bin/sh\nprintf '"+out+"\\n'\n"), 0o755)
		p, err := r.Find(context.Background(), tool)
		if ok && (err != nil || p != script) {
			t.Errorf("%q: not accepted: %s %v", out, p, err)
		}
		if !ok && !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: accepted (%s, %v)", out, p, err)
		}
	}
}

// writeTool lays out a tiny build module under root/tools/<name> whose main prints greeting.
func writeTool(t *testing.T, root, name, greeting string) {
	t.Helper()
	mod := filepath.Join(root, "tools", name)
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/"+name+"\n\ngo 1.26\n"), 0o644)
	_ = os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() { println(\""+greeting+"\") }\n"), 0o644)
}

// EnsureAll builds what is missing side by side, reports each build's progress whole, and
// finds what exists without building it.
func TestEnsureAllBuildsTheMissingSideBySide(t *testing.T) {
	root := t.TempDir()
	writeTool(t, root, "one", "one")
	writeTool(t, root, "two", "two")
	one := Tool{Name: "one", Version: "1.0.0", Module: "tools/one", Package: "example.com/one"}
	two := Tool{Name: "two", Version: "2.0.0", Module: "tools/two", Package: "example.com/two"}
	var progress strings.Builder
	r := Resolver{CacheDir: filepath.Join(root, "cache"), RepoRoot: root, SkipPath: true, Progress: &progress}
	paths, err := r.EnsureAll(context.Background(), []Tool{one, two})
	if err != nil {
		t.Fatal(err)
	}
	if paths[0] != r.CachePath(one) || paths[1] != r.CachePath(two) {
		t.Errorf("paths %v", paths)
	}
	for _, want := range []string{"building one 1.0.0", "built one 1.0.0", "building two 2.0.0", "built two 2.0.0"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	progress.Reset()
	if _, err := r.EnsureAll(context.Background(), []Tool{one, two}); err != nil || progress.Len() != 0 {
		t.Errorf("second EnsureAll: %v, progress %q", err, progress.String())
	}
}

// A tool keyed by source files is rebuilt when they change, and kept apart from the old build.
func TestKeyFilesChangeTheCachePath(t *testing.T) {
	root := t.TempDir()
	writeTool(t, root, "keyed", "v1")
	tool := Tool{Name: "keyed", Version: "1.0.0", Variant: "x", Module: "tools/keyed", Package: "example.com/keyed",
		KeyFiles: []string{"tools/keyed/main.go"}}
	r := Resolver{CacheDir: filepath.Join(root, "cache"), RepoRoot: root, SkipPath: true}
	first, err := r.Ensure(context.Background(), tool)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(first), "keyed-1.0.0-x-") {
		t.Errorf("cache name %s", filepath.Base(first))
	}
	writeTool(t, root, "keyed", "v2")
	if _, err := r.Find(context.Background(), tool); !errors.Is(err, ErrNotFound) {
		t.Fatalf("changed sources still found the old build: %v", err)
	}
	second, err := r.Ensure(context.Background(), tool)
	if err != nil || second == first {
		t.Fatalf("rebuild: %s %v (first %s)", second, err, first)
	}
}
