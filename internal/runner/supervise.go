// Supervision: restarts per the app's policy.

package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/goplt/goplt/internal/proc"
)

// supervise watches an app and its sidecar: a process that dies is restarted per the app's
// policy, or the whole group fails.
func (g *Group) supervise(ctx context.Context, a *App, rc renderedConfig) {
	defer g.wg.Done()
	restarts := 0
	maxRestarts := a.Spec.MaxRestarts
	if maxRestarts == 0 {
		maxRestarts = 3
	}
	for {
		a.mu.Lock()
		app, sidecar := a.app, a.sidecar
		a.mu.Unlock()
		var appDone <-chan struct{}
		if app != nil {
			appDone = app.Done()
		}
		var died *proc.Process
		select {
		case <-g.stopping:
			return
		case req := <-a.reload:
			req.done <- g.replace(ctx, a, &rc, req.sidecar)
			continue
		case <-appDone:
			died = app
		case <-sidecar.Done():
			died = sidecar
		}
		select {
		case <-g.stopping:
			return
		default:
		}
		fmt.Fprintf(g.opts.Output, "goplt: %s\n", died.Describe())
		if a.Spec.Restart == "never" || restarts >= maxRestarts {
			g.failed <- fmt.Errorf("%s died and restart policy %q allows no more restarts (%d made)", died.Name(), policy(a.Spec.Restart), restarts)
			return
		}
		restarts++
		backoff := time.Duration(1<<(restarts-1)) * time.Second
		fmt.Fprintf(g.opts.Output, "goplt: restarting %s in %s (restart %d of %d)\n", died.Name(), backoff, restarts, maxRestarts)
		select {
		case <-g.stopping:
			return
		case <-time.After(backoff):
		}
		var p *proc.Process
		var err error
		if died == app {
			p, err = g.spawnApp(a)
		} else {
			p, err = g.spawnSidecar(a, rc.Path)
		}
		if err != nil {
			g.failed <- fmt.Errorf("restart %s: %w", died.Name(), err)
			return
		}
		a.mu.Lock()
		if died == app {
			a.app = p
		} else {
			a.sidecar = p
		}
		a.restarts++
		a.mu.Unlock()
	}
}

func policy(p string) string {
	if p == "" {
		return "on-failure"
	}
	return p
}
