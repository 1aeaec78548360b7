package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
)

func newMigrateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply every module's database migrations, in dependency order, on the local stack",
		Long: `migrate follows deploy/local/migrations.yaml (generated from manifests/): for each module,
in dependency order, it builds the app and runs it with --migrate-only against the local
PostgreSQL. It uses the running stack, or starts one for the duration. goplt run does the
same implicitly, since each app applies its own migrations before it serves.`,
		Args: cobra.NoArgs,
	}
	ports := portFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if e.root == "" {
			return fmt.Errorf("run goplt from inside the goplt repository")
		}
		var mp struct {
			Steps []compile.MigrationStep `yaml:"steps"`
		}
		b, err := os.ReadFile(filepath.Join(e.root, compile.MigrationsFile))
		if err != nil {
			return fmt.Errorf("read the migration plan (make generate writes it): %w", err)
		}
		if err := yaml.Unmarshal(b, &mp); err != nil {
			return fmt.Errorf("%s: %w", compile.MigrationsFile, err)
		}
		plan, err := runplan.Load(filepath.Join(e.root, "deploy", "local", "runplan.yaml"))
		if err != nil {
			return err
		}
		var apps []runplan.App
		for _, s := range mp.Steps {
			a, ok := plan.App(s.AppID)
			if !ok || a.Build == "" {
				return fmt.Errorf("migration step %s: app %s is not built from a Go package in the run plan", s.Module, s.AppID)
			}
			apps = append(apps, a)
		}
		bins, err := runner.BuildApps(ctx, e.root, filepath.Join(e.home, "run", "apps", "bin"), apps)
		if err != nil {
			return err
		}
		stack, err := e.stackUp(ctx, *ports)
		if err != nil {
			return err
		}
		defer stack.Stop()
		for i, s := range mp.Steps {
			fmt.Fprintf(e.stderr, "migrate: %d/%d %s (schema %s, %s)\n", i+1, len(mp.Steps), s.Module, s.Schema, s.Folder)
			c := exec.CommandContext(ctx, bins[s.AppID], "--migrate-only")
			c.Env = append(os.Environ(), "APP_ID="+s.AppID, envvar.DBSchema+"="+s.Schema, envvar.DatabaseURL+"="+stack.Endpoints().PostgresURL)
			c.Stdout, c.Stderr = e.stderr, e.stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("migrations of %s failed (see its log above): %w", s.Module, err)
			}
		}
		fmt.Fprintf(e.stdout, "migrated %d module(s)\n", len(mp.Steps))
		return nil
	}
	return cmd
}
