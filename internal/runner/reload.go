// Reloading apps whose code or manifest changed (goplt run --watch).

package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/goplt/goplt/internal/runplan"
)

// reloadRequest asks an instance's supervisor to replace its processes.
type reloadRequest struct {
	sidecar bool // the sidecar too, its configuration rendered anew
	done    chan error
}

// Rebuild compiles the apps ids again into the group's binaries (one go build). On a build
// error nothing is replaced: the running processes keep serving.
func (g *Group) Rebuild(ctx context.Context, ids []string) error {
	var apps []runplan.App
	for _, id := range ids {
		if a := g.App(id); a != nil && !g.Outside(id) {
			apps = append(apps, a.Spec)
		}
	}
	// The binaries keep their paths (g.bins): go build renames each new one into place, so a
	// running process keeps its old file until it is replaced.
	_, err := BuildApps(ctx, g.opts.Root, filepath.Join(g.opts.WorkDir, "bin"), apps)
	return err
}

// Restart replaces the processes of every instance of app id, one instance after another, each
// waiting until the new one is ready: the old app process gets SIGTERM and drains its
// in-flight requests, then the new one starts from the app's binary. The sidecar stays up,
// unless sidecar is true (the manifests changed): then it restarts too, with its configuration
// rendered again. An app run outside goplt (Except) keeps its process.
func (g *Group) Restart(ctx context.Context, id string, sidecar bool) error {
	instances := g.apps[id]
	if len(instances) == 0 {
		return fmt.Errorf("restart %s: no such app in this run", id)
	}
	for _, a := range instances {
		req := reloadRequest{sidecar: sidecar, done: make(chan error, 1)}
		select {
		case a.reload <- req:
		case <-g.stopping:
			return errors.New("restart: the run is stopping")
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-req.done:
			if err != nil {
				return fmt.Errorf("restart %s: %w", a.Name(), err)
			}
		case <-g.stopping:
			return errors.New("restart: the run is stopping")
		}
	}
	return nil
}

// replace is Restart's work on one instance, done by its supervisor so nothing else restarts
// the processes it stops.
func (g *Group) replace(ctx context.Context, a *App, rc *renderedConfig, sidecar bool) error {
	start := time.Now()
	if p := a.Process(); p != nil {
		p.Stop(10 * time.Second)
	}
	if sidecar {
		if p := a.Sidecar(); p != nil {
			p.Stop(10 * time.Second)
		}
		nrc, err := g.render(a)
		if err != nil {
			return err
		}
		*rc = nrc
	}
	if err := g.spawn(a, *rc, sidecar); err != nil {
		return err
	}
	if err := g.waitReady(ctx, a, rc.SelfRegister); err != nil {
		return err
	}
	fmt.Fprintf(g.opts.Output, "goplt: %s restarted in %s\n", a.Name(), time.Since(start).Round(time.Millisecond))
	return nil
}
