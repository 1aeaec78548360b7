package cli

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/watch"
)

// watchAndReload serves goplt run --watch until ctx ends: a saved change to an app's code
// rebuilds and restarts that app alone (its sidecar stays up); a change to manifests/ or
// schemas/ regenerates and restarts the apps whose manifest changed, sidecars too (every app
// when platform.yaml or a schema changed). A build or validation error is printed and what
// runs keeps running.
func (e *env) watchAndReload(ctx context.Context, group *runner.Group, plan *runplan.Plan, ep infra.Endpoints) {
	builds := map[string]string{}
	for _, a := range plan.Apps {
		if a.Build != "" && group.App(a.ID) != nil && !group.Outside(a.ID) {
			builds[a.ID] = a.Build
		}
	}
	w, err := watch.New(ctx, e.root, builds)
	if err != nil {
		fmt.Fprintf(e.stderr, "goplt: --watch: %v\n", err)
		return
	}
	fmt.Fprintf(e.stdout, "goplt: watching the code of %d apps, manifests/ and schemas/: a saved change rebuilds and restarts what it affects\n", len(builds))
	for {
		ch, err := w.Next(ctx)
		if err != nil {
			return
		}
		seen := time.Now()
		restart := map[string]bool{} // app id -> its sidecar too
		if len(ch.Definitions) > 0 {
			ids, err := e.regenerate(ctx, ep, plan, group, ch.Definitions)
			w.Absorb() // the generated files just written are part of this change
			if err != nil {
				fmt.Fprintf(e.stderr, "goplt: %s changed: %v; what runs keeps running\n", strings.Join(ch.Definitions, ", "), err)
			}
			for _, id := range ids {
				restart[id] = true
			}
		}
		for _, id := range ch.Apps {
			if _, ok := restart[id]; !ok {
				restart[id] = false // code only: the sidecar stays
			}
		}
		if len(restart) == 0 {
			continue
		}
		ids := slices.Sorted(maps.Keys(restart))
		fmt.Fprintf(e.stdout, "goplt: %s changed: rebuilding %s\n", summarize(ch.Files), strings.Join(ids, ", "))
		if err := group.Rebuild(ctx, ids); err != nil {
			fmt.Fprintf(e.stderr, "goplt: %v\ngoplt: the running version keeps serving; save a fix to try again\n", err)
			continue
		}
		ok := true
		for _, id := range ids {
			if err := group.Restart(ctx, id, restart[id]); err != nil {
				fmt.Fprintf(e.stderr, "goplt: %v\n", err)
				ok = false
			}
		}
		if ok {
			fmt.Fprintf(e.stdout, "goplt: %s serving the change %s after it was seen\n", strings.Join(ids, ", "), time.Since(seen).Round(10*time.Millisecond))
		}
		w.Remap(ctx)
	}
}

// regenerate validates and compiles the changed manifests, writes what changed, gives the
// broker the new access list, and returns the apps to restart with their sidecars.
func (e *env) regenerate(ctx context.Context, ep infra.Endpoints, plan *runplan.Plan, group *runner.Group, changed []string) ([]string, error) {
	set, err := e.loadManifests("")
	if err != nil {
		return nil, err
	}
	_, changes, err := e.changesFor(set)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if err := c.apply(e.root); err != nil {
			return nil, err
		}
	}
	if len(changes) > 0 {
		fmt.Fprintf(e.stdout, "goplt: regenerated %d files\n", len(changes))
	}
	var apps []string
	for _, a := range plan.Apps {
		apps = append(apps, a.ID)
	}
	if err := runner.PrepareBus(ctx, e.root, ep, apps); err != nil {
		return nil, err
	}
	all := false
	affected := map[string]bool{}
	for _, f := range changed {
		if !strings.HasPrefix(f, "manifests"+string(filepath.Separator)) || filepath.Base(f) == "platform.yaml" {
			all = true // a schema or the platform: any app may read it
			continue
		}
		for _, m := range set.Modules {
			if m.File() == filepath.ToSlash(f) {
				if group.App(m.Spec.App.ID) == nil {
					fmt.Fprintf(e.stdout, "goplt: %s is not part of this run: stop and goplt run again to start it\n", m.Spec.App.ID)
					continue
				}
				affected[m.Spec.App.ID] = true
			}
		}
	}
	if all {
		for _, a := range plan.Apps {
			if group.App(a.ID) != nil {
				affected[a.ID] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(affected)), nil
}

// summarize names a few changed files.
func summarize(files []string) string {
	if len(files) <= 3 {
		return strings.Join(files, ", ")
	}
	return fmt.Sprintf("%s and %d more files", strings.Join(files[:3], ", "), len(files)-3)
}
