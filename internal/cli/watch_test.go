package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/stacktest"
)

// syncBuffer is a log the watch loop writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// goplt run --watch on a manifest change, in a copy of the repository on a real stack: a valid
// edit is regenerated and restarts the module with its sidecar; an invalid one is reported
// with file:line and nothing stops.
func TestWatchRegeneratesOnManifestChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a stack and a module")
	}
	dir := copyRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stack, err := stacktest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	plan, err := stack.LocalPlan(nil, "notes", "console")
	if err != nil {
		t.Fatal(err)
	}
	plan.Apps = plan.Apps[:0:0]
	full, _ := runplan.Load(filepath.Join(dir, "deploy", "local", "runplan.yaml"))
	for _, a := range full.Apps {
		if a.ID == "notes" {
			a.DependsOn, a.Replicas = nil, 1
			plan.Apps = append(plan.Apps, a)
		}
	}
	group, err := stack.Run(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Stop()
	sidecar := group.App("notes").Sidecar().Pid()

	var out, errs syncBuffer
	e := &env{stdout: &out, stderr: &errs, root: dir, home: t.TempDir()}
	done := make(chan struct{})
	go func() { defer close(done); e.watchAndReload(ctx, group, plan, stack.Endpoints()) }()
	defer func() { cancel(); <-done }()
	waitFor := func(w *syncBuffer, want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(w.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s\n%s", want, out.String(), errs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(&out, "goplt: watching the code of 1 apps")

	manifest := filepath.Join(dir, "manifests", "notes.yaml")
	src, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "description: Read a note}", "description: Read one note}", 1)
	if edited == string(src) {
		t.Fatal("manifests/notes.yaml no longer has the line the test edits")
	}
	if err := os.WriteFile(manifest, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(&out, "goplt: notes serving the change")
	gen, err := os.ReadFile(filepath.Join(dir, "apps", "notes", "permissions", "permissions_gen.go"))
	if err != nil || !strings.Contains(string(gen), "Read one note") {
		t.Errorf("permissions_gen.go not regenerated (%v)", err)
	}
	if group.App("notes").Sidecar().Pid() == sidecar {
		t.Error("a manifest change did not restart the module's sidecar")
	}

	broken := strings.Replace(edited, "schema: notes", "schema: Notes", 1)
	if err := os.WriteFile(manifest, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(&errs, "what runs keeps running")
	if !strings.Contains(errs.String(), "manifests/notes.yaml:") {
		t.Errorf("the problem names no file:line:\n%s", errs.String())
	}
	if p := group.App("notes").Process(); p == nil || p.Exited() {
		t.Error("notes stopped after an invalid manifest")
	}
}
