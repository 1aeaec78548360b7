package runner_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/stacktest"
	"github.com/goplt/goplt/internal/watch"
)

// notesFile is the module source the reload tests edit, in a copy of the repository.
const notesFile = "apps/notes/notes/notes.go"

// reloadFixture runs notes (two replicas) and the console sidecar from a copy of the
// repository, whose notes code the test edits as a developer would.
type reloadFixture struct {
	root, original string
	opts           runner.Options
	g              *runner.Group
	w              *watch.Watcher
	edits          int
}

func startReloadFixture(tb testing.TB) *reloadFixture {
	tb.Helper()
	if stack == nil {
		tb.Skip("integration test: needs the real stack")
	}
	root := stacktest.CopyRepository(tb)
	plan, err := runplan.Load(filepath.Join(root, "deploy", "local", "runplan.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	plan.Apps = slices.DeleteFunc(plan.Apps, func(a runplan.App) bool { return a.ID != "notes" && a.ID != "console" })
	for i := range plan.Apps {
		plan.Apps[i].DependsOn = slices.DeleteFunc(plan.Apps[i].DependsOn, func(d string) bool { return d != "notes" })
	}
	f := &reloadFixture{root: root}
	b, err := os.ReadFile(filepath.Join(root, notesFile))
	if err != nil {
		tb.Fatal(err)
	}
	f.original = string(b)
	f.opts = runner.Options{Root: root, Plan: plan, Infra: stack.Endpoints(), Daprd: stack.Daprd,
		WorkDir: tb.TempDir(), Output: stack.Output, Ports: stack.Ports}
	if f.g, err = runner.Start(context.Background(), f.opts); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.g.Stop() })
	if f.w, err = watch.New(context.Background(), root, map[string]string{"notes": "./apps/notes"}); err != nil {
		tb.Fatal(err)
	}
	return f
}

// edit saves a change to notes' code: its not-found message carries a new marker, returned.
func (f *reloadFixture) edit(tb testing.TB) string {
	tb.Helper()
	f.edits++
	marker := fmt.Sprintf("edit-%d", f.edits)
	src := strings.Replace(f.original, `"no note with id "+id`, `"no note with id "+id+" `+marker+`"`, 1)
	if src == f.original {
		tb.Fatalf("%s no longer has the line the test edits", notesFile)
	}
	if err := os.WriteFile(filepath.Join(f.root, notesFile), []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	return marker
}

// served waits until every answer through the console sidecar carries marker (each replica
// serves the new code), or fails after timeout.
func (f *reloadFixture) served(tb testing.TB, marker string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	hits := 0
	for hits < 4 { // calls spread over both replicas
		console := f.g.App("console")
		req, _ := http.NewRequest(http.MethodGet, console.DaprHTTP()+"/v1.0/invoke/notes/method/notes/00000000-0000-4000-8000-000000000000", nil)
		req.Header.Set("dapr-api-token", console.DaprAPIToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), marker) {
				hits++
				continue
			}
			hits = 0
		}
		if time.Now().After(deadline) {
			tb.Fatalf("notes did not serve the change %s within %s", marker, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reload is what goplt run --watch does after a save: see the change, rebuild, restart.
func (f *reloadFixture) reload(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	ch, err := f.w.Next(ctx)
	if err != nil {
		tb.Fatalf("the watcher saw no change: %v", err)
	}
	t1 := time.Now()
	defer func() {
		tb.Logf("change seen after %s, rebuilt and restarted in %s", t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	}()
	if !slices.Equal(ch.Apps, []string{"notes"}) {
		tb.Fatalf("change %+v, want notes alone", ch)
	}
	if err := f.g.Rebuild(ctx, ch.Apps); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("rebuilt in %s", time.Since(t1).Round(time.Millisecond))
	if err := f.g.Restart(ctx, "notes", false); err != nil {
		tb.Fatal(err)
	}
	f.w.Remap(ctx) // as goplt run --watch does once it has reloaded
}

// A saved change to a module's code is served after a rebuild and a restart of that app
// alone: its sidecars and the other apps keep running, and a change that does not compile
// leaves the running version serving.
func TestReloadServesTheChangeSidecarsStay(t *testing.T) {
	f := startReloadFixture(t)
	var sidecars []int
	for _, a := range f.g.Instances("notes") {
		sidecars = append(sidecars, a.Sidecar().Pid())
	}
	console := f.g.App("console").Sidecar().Pid()
	start := time.Now()
	marker := f.edit(t)
	f.reload(t)
	f.served(t, marker, 10*time.Second)
	t.Logf("save to the change served by both replicas: %s", time.Since(start).Round(time.Millisecond))
	for i, a := range f.g.Instances("notes") {
		if a.Sidecar().Pid() != sidecars[i] {
			t.Errorf("%s's sidecar was restarted", a.Name())
		}
	}
	if f.g.App("console").Sidecar().Pid() != console {
		t.Error("the console sidecar was restarted")
	}

	// A change that does not compile: the build fails, nothing is replaced.
	if err := os.WriteFile(filepath.Join(f.root, notesFile), []byte(f.original+"\nfunc broken( {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.w.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.g.Rebuild(ctx, []string{"notes"}); err == nil || !strings.Contains(err.Error(), "notes.go") {
		t.Errorf("a broken build: %v, want the compiler's error naming the file", err)
	}
	f.served(t, marker, 5*time.Second)
}

// BenchmarkReload measures save to served for a module (notes, two replicas, on 2 cores):
// goplt run --watch's rebuild and restart of the app alone, beside the baseline of stopping and
// starting the run again (what a developer without --watch does), both building the change.
func BenchmarkReload(b *testing.B) {
	f := startReloadFixture(b)
	var reload, full time.Duration
	for range b.N {
		start := time.Now()
		marker := f.edit(b)
		f.reload(b)
		f.served(b, marker, 30*time.Second)
		reload += time.Since(start)

		start = time.Now()
		marker = f.edit(b)
		f.g.Stop()
		g, err := runner.Start(context.Background(), f.opts)
		if err != nil {
			b.Fatal(err)
		}
		f.g = g
		f.served(b, marker, 60*time.Second)
		full += time.Since(start)
		f.w.Absorb() // the full restart's edit is not the watcher's next change
	}
	b.ReportMetric(float64(reload.Milliseconds())/float64(b.N), "reload-ms")
	b.ReportMetric(float64(full.Milliseconds())/float64(b.N), "full-restart-ms")
}
