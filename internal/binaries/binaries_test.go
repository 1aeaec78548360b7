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
