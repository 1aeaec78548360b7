// Building the apps' binaries.

package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goplt/goplt/internal/runplan"
)

// buildApps compiles the Go packages of the apps this group starts.
func (g *Group) buildApps(ctx context.Context) (map[string]string, error) {
	var apps []runplan.App
	for _, id := range g.order {
		a, _ := g.opts.Plan.App(id)
		if !slices.Contains(g.opts.Except, id) { // the user builds and runs those
			apps = append(apps, a)
		}
	}
	return BuildApps(ctx, g.opts.Root, filepath.Join(g.opts.WorkDir, "bin"), apps)
}

// BuildApps compiles every Go package the apps name into binDir, in one `go build` so shared
// packages compile once. It returns app id -> binary.
func BuildApps(ctx context.Context, root, binDir string, apps []runplan.App) (map[string]string, error) {
	bins := map[string]string{}
	var pkgs []string
	for _, a := range apps {
		if a.Build == "" {
			continue
		}
		pkgs = append(pkgs, a.Build)
		bins[a.ID] = filepath.Join(binDir, filepath.Base(a.Build))
	}
	if len(pkgs) == 0 {
		return bins, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	// Linking is most of a rebuild (goplt run --watch): without DWARF (-w) and the symbol
	// table (-s) it takes 2.4 s instead of 3.2 s for notes on 2 cores, and stack traces do not
	// need them (a debugger builds its own: goplt run --except). No VCS stamp: it runs git.
	args := append([]string{"build", "-ldflags=-s -w", "-buildvcs=false", "-o", binDir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build apps (%s): %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return bins, nil
}

func (g *Group) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(g.opts.Root, p)
}
