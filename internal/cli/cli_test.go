package cli

import (
	"context"
	"strings"
	"testing"
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
