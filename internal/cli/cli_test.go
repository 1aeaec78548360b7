package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
)

func run(args ...string) (int, string, string) {
	var out, errb strings.Builder
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"bogus"}, ExitUsage, `unknown command "bogus"`},
		{[]string{"infra", "up", "--nope"}, ExitUsage, "unknown flag: --nope"},
		{[]string{"infra"}, ExitUsage, "infra needs a subcommand"},
		{[]string{"version", "extra"}, ExitUsage, "unknown command"},
		{[]string{"infra", "up", "--postgres-port", "x"}, ExitUsage, "invalid argument"},
		{[]string{"infra", "status", "--home", "/nonexistent/goplt-home"}, ExitUnhealthy, "not running"},
		{[]string{"run", "--plan", "/nonexistent/plan.yaml"}, ExitFailure, "read run plan"},
		{[]string{"version"}, ExitOK, ""},
	} {
		code, _, stderr := run(c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("goplt %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.err)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	check := func(path ...string) {
		code, out, stderr := run(append(path, "--help")...)
		if code != ExitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("goplt %s --help: exit %d, %q %q", strings.Join(path, " "), code, out, stderr)
		}
	}
	for _, c := range newRoot(&env{}).Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		check(c.Name())
		for _, sub := range c.Commands() {
			if !sub.Hidden {
				check(c.Name(), sub.Name())
			}
		}
	}
}

func TestAuthRotateKey(t *testing.T) {
	home := t.TempDir()
	code, _, stderr := run("auth", "rotate-key", "--home", home)
	if code != ExitFailure || !strings.Contains(stderr, "start the platform once") {
		t.Fatalf("rotate without secrets: exit %d %q", code, stderr)
	}
	if _, err := localsecrets.Ensure(infra.SecretsFile(home), time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run("auth", "rotate-key", "--home", home)
	if code != ExitOK || !strings.Contains(out, "new signing key") {
		t.Fatalf("rotate: exit %d %q %q", code, out, stderr)
	}
	if code, _, _ := run("auth", "rotate-key", "--home", home, "--retain", "0s"); code != ExitUsage {
		t.Fatalf("--retain 0s: exit %d, want usage", code)
	}
}
