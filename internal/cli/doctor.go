package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/infra"
)

// check is one doctor finding: ok, or a problem and what to do about it.
type check struct {
	name string
	err  error
	fix  string
}

func newDoctorCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine for what goplt needs, and say what to do about each problem (exit 3 if any)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			checks := runChecks(cmd.Context(), e)
			bad := 0
			for _, c := range checks {
				if c.err == nil {
					fmt.Fprintf(e.stdout, "ok       %s\n", c.name)
					continue
				}
				bad++
				fmt.Fprintf(e.stdout, "PROBLEM  %s: %v\n         fix: %s\n", c.name, c.err, c.fix)
			}
			if bad > 0 {
				return &exitError{code: ExitUnhealthy, msg: fmt.Sprintf("%d problem(s) found", bad)}
			}
			return nil
		},
	}
}

var goVersionRE = regexp.MustCompile(`go1\.(\d+)`)

func runChecks(ctx context.Context, e *env) []check {
	var out []check
	// Go: builds the apps and, when missing, daprd/sentry/consul.
	{
		c := check{name: "Go toolchain (1.26 or newer)", fix: "install Go 1.26+ from https://go.dev/dl and put it on PATH"}
		b, err := exec.CommandContext(ctx, "go", "version").Output()
		switch m := goVersionRE.FindSubmatch(b); {
		case err != nil:
			c.err = fmt.Errorf("go not runnable: %w", err)
		case m == nil:
			c.err = fmt.Errorf("cannot read the version from %q", b)
		default:
			if minor, _ := strconv.Atoi(string(m[1])); minor < 26 {
				c.err = fmt.Errorf("found %s", b)
			}
		}
		out = append(out, c)
	}
	{
		c := check{name: "PostgreSQL server binaries", fix: "Debian/Ubuntu: apt-get install postgresql; elsewhere put postgres and initdb on PATH"}
		_, c.err = infra.PostgresBinDir()
		out = append(out, c)
	}
	if os.Geteuid() == 0 {
		c := check{name: "user to run PostgreSQL as (running as root)", fix: "apt-get install postgresql creates it, or: useradd --system --no-create-home postgres"}
		_, c.err = user.Lookup("postgres")
		out = append(out, c)
	}
	r := e.resolver()
	for _, t := range binaries.All() {
		c := check{name: fmt.Sprintf("%s %s", t.Name, t.Version)}
		p, err := r.Find(ctx, t)
		if err == nil {
			c.name += " (" + p + ")"
		} else if e.root == "" {
			c.err = err
			c.fix = "run goplt inside the goplt repository so it can build it, or put " + t.Name + " " + t.Version + " on PATH"
		} else if _, serr := os.Stat(filepath.Join(e.root, t.Module, "go.sum")); serr != nil {
			c.err = fmt.Errorf("not built, and its build module %s is incomplete: %w", t.Module, serr)
			c.fix = "restore " + t.Module + " from git (git checkout -- " + t.Module + ")"
		} else {
			c.err = errors.New("not built yet (buildable: the build module is present)")
			c.fix = fmt.Sprintf("run `goplt deps` (about %s cold), or `make run`, which does it", t.ColdBuild.Round(time.Minute))
		}
		out = append(out, c)
	}
	// Ports: free, or held by our own running stack.
	running := map[int]bool{}
	if st, err := infra.LoadState(e.home); err == nil {
		for _, p := range append([]int{st.Ports.Postgres, st.Ports.ConsulHTTP, st.Ports.SentryGRPC}, st.Ports.Kafka...) {
			running[p] = true
		}
	}
	d := infra.DefaultPorts()
	for _, pu := range []struct {
		what string
		port int
	}{{"postgres", d.Postgres}, {"consul http", d.ConsulHTTP}, {"sentry", d.SentryGRPC}, {"kafka", d.Kafka[0]}} {
		c := check{name: fmt.Sprintf("port %d (%s) free or ours", pu.port, pu.what),
			fix: "stop the process holding it, or pass another port (goplt infra up --help)"}
		if !running[pu.port] {
			c.err = infra.CheckPortFree(pu.what, pu.port)
		}
		out = append(out, c)
	}
	return out
}
