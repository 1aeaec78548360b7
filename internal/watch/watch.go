// Package watch tells which running apps a change of files affects, for goplt run --watch: an
// app depends on the Go files (tests excepted) and embedded files of its package and of every
// package of the repository it imports (go list -deps), and every app on the manifests and
// event schemas. It polls file stamps, which needs no OS-specific notification API and costs
// about a millisecond per scan of this repository.
package watch

import (
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Change is a settled burst of file changes.
type Change struct {
	// Apps whose code changed, sorted.
	Apps []string
	// Definitions are the changed files under manifests/ and schemas/ (relative paths).
	Definitions []string
	// Files are all changed files, relative to the root.
	Files []string
}

// Watcher polls the files the apps are built from.
type Watcher struct {
	root   string
	builds map[string]string // app id -> Go package ("./apps/notes")
	// Interval between scans; Settle is how long files must stay unchanged before a change
	// is reported (an editor's save, a git checkout, write several files).
	Interval, Settle time.Duration

	deps  map[string][]string // folder -> app ids built from it
	stamp map[string]stamp
	remap bool // a change was reported: imports may have changed
}

type stamp struct {
	mod  time.Time
	size int64
}

// New maps each app's folders (go list -deps within root) and takes the first snapshot.
func New(ctx context.Context, root string, builds map[string]string) (*Watcher, error) {
	w := &Watcher{root: root, builds: builds, Interval: 100 * time.Millisecond, Settle: 100 * time.Millisecond}
	if err := w.mapDeps(ctx); err != nil {
		return nil, err
	}
	w.stamp = w.scan()
	return w, nil
}

// mapDeps asks go list which folders of the repository each app's package is built from: two
// calls whatever the number of apps (one for the apps' dependencies, one for the
// repository's packages and their folders).
func (w *Watcher) mapDeps(ctx context.Context) error {
	ids := make([]string, 0, len(w.builds))
	pkgs := make([]string, 0, len(w.builds))
	for id, pkg := range w.builds {
		ids = append(ids, id)
		pkgs = append(pkgs, pkg)
	}
	if len(pkgs) == 0 {
		w.deps = map[string][]string{}
		return nil
	}
	apps, err := w.goList(ctx, append([]string{"-f", "{{.ImportPath}} {{.Dir}} {{join .Deps \" \"}}"}, pkgs...)...)
	if err != nil {
		return err
	}
	all, err := w.goList(ctx, "-f", "{{.ImportPath}} {{.Dir}}", "./...")
	if err != nil {
		return err
	}
	dirOf := map[string]string{} // import path -> folder, relative to the root
	for _, line := range append(all, apps...) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if rel, err := filepath.Rel(w.root, f[1]); err == nil && !strings.HasPrefix(rel, "..") {
			dirOf[f[0]] = rel
		}
	}
	deps := map[string][]string{}
	for i, line := range apps {
		f := strings.Fields(line)
		if len(f) < 2 || i >= len(ids) {
			continue
		}
		// go list prints the packages in the order given.
		id := ids[i]
		for _, imp := range append([]string{f[0]}, f[2:]...) {
			if dir, ok := dirOf[imp]; ok {
				deps[dir] = append(deps[dir], id)
			}
		}
	}
	w.deps = deps
	return nil
}

// goList runs go list in the root and returns its lines.
func (w *Watcher) goList(ctx context.Context, args ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list"}, args...)...)
	cmd.Dir = w.root
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("go list %s: %w\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

// scan stamps every watched file: the Go files and embedded files (any file in a package's
// subfolders that holds no package of its own, such as migrations/) of the mapped folders,
// and manifests/ and schemas/.
func (w *Watcher) scan() map[string]stamp {
	out := map[string]stamp{}
	add := func(rel string, info fs.FileInfo) { out[rel] = stamp{info.ModTime(), info.Size()} }
	for dir := range w.deps {
		_ = filepath.WalkDir(filepath.Join(w.root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(w.root, p)
			if d.IsDir() {
				if rel != dir && (w.deps[rel] != nil || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
					return filepath.SkipDir // its own package (mapped on its own) or not code
				}
				return nil
			}
			if strings.HasSuffix(rel, "_test.go") {
				return nil
			}
			if info, err := d.Info(); err == nil {
				add(rel, info)
			}
			return nil
		})
	}
	for _, dir := range []string{"manifests", "schemas"} {
		_ = filepath.WalkDir(filepath.Join(w.root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(w.root, p)
			if info, err := d.Info(); err == nil {
				add(rel, info)
			}
			return nil
		})
	}
	return out
}

// Next blocks until watched files change and have settled, and says what changed. It returns
// ctx's error when ctx ends.
func (w *Watcher) Next(ctx context.Context) (Change, error) {
	if w.remap {
		w.Remap(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return Change{}, ctx.Err()
		case <-time.After(w.Interval):
		}
		now := w.scan()
		if sameStamps(now, w.stamp) {
			continue
		}
		// Wait until a scan sees nothing new: the burst is over.
		for {
			select {
			case <-ctx.Done():
				return Change{}, ctx.Err()
			case <-time.After(w.Settle):
			}
			next := w.scan()
			if sameStamps(next, now) {
				break
			}
			now = next
		}
		ch := w.diff(now)
		w.stamp = now
		w.remap = true
		return ch, nil
	}
}

// Remap maps the apps' folders again: the last change may have added or dropped imports.
// Next does it first when the caller has not; a caller that calls it once it has reloaded
// keeps go list off the path from the next save to served. Files of folders the new map adds
// count as seen; any other change since the last report still shows.
func (w *Watcher) Remap(ctx context.Context) {
	old := w.deps
	if err := w.mapDeps(ctx); err == nil {
		for rel, st := range w.scan() {
			if _, ok := w.stamp[rel]; !ok && !isDefinition(rel) && old[w.pkgDir(rel)] == nil {
				w.stamp[rel] = st
			}
		}
	}
	w.remap = false
}

// Absorb takes the files as they are now as seen: changes the caller made itself (goplt
// generate's output) are not reported.
func (w *Watcher) Absorb() { w.stamp = w.scan() }

// diff names the changed files since the last reported change and the apps they affect.
func (w *Watcher) diff(now map[string]stamp) Change {
	var ch Change
	apps := map[string]bool{}
	seen := map[string]bool{}
	note := func(rel string) {
		if seen[rel] {
			return
		}
		seen[rel] = true
		ch.Files = append(ch.Files, rel)
		if isDefinition(rel) {
			ch.Definitions = append(ch.Definitions, rel)
			return
		}
		for _, id := range w.deps[w.pkgDir(rel)] {
			apps[id] = true
		}
	}
	for rel, st := range now {
		if old, ok := w.stamp[rel]; !ok || old != st {
			note(rel)
		}
	}
	for rel := range w.stamp {
		if _, ok := now[rel]; !ok {
			note(rel)
		}
	}
	for id := range apps {
		ch.Apps = append(ch.Apps, id)
	}
	slices.Sort(ch.Apps)
	slices.Sort(ch.Files)
	slices.Sort(ch.Definitions)
	return ch
}

// pkgDir is the closest mapped folder above a file: its package ("" for none).
func (w *Watcher) pkgDir(rel string) string {
	for dir := filepath.Dir(rel); dir != "." && dir != string(filepath.Separator); dir = filepath.Dir(dir) {
		if _, ok := w.deps[dir]; ok {
			return dir
		}
	}
	return ""
}

// isDefinition says whether a file is a manifest or an event schema.
func isDefinition(rel string) bool {
	return strings.HasPrefix(rel, "manifests"+string(filepath.Separator)) || strings.HasPrefix(rel, "schemas"+string(filepath.Separator))
}

func sameStamps(a, b map[string]stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
