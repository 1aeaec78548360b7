package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/contracts"
)

func newContractsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "contracts", Short: "Check the platform's event and HTTP API contracts"}
	diff := &cobra.Command{
		Use:   "diff <old git ref or folder>",
		Short: "Report breaking changes to published events and the HTTP API since an older revision",
		Long: `diff compares the contracts the manifests declare now with those of an older revision: a git
ref of this repository (main, a tag, HEAD~3) or a folder holding a checkout.

Events (topic, payload version, JSON Schema): a published topic removed, a version number reused
with a different schema, or a schema changed so that readers of either version break: a field
removed, a field newly required, a type or format changed, an enum narrowed.

HTTP API (every route the gateway exposes): a route removed, a public route that now needs a
token or another permission, the successful answer's status changed, or a request or response
schema changed by the same rules as events (pointers start with /request or /response).

Each is printed with the rule it breaks; the exit status is 1 if there is any.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e.root == "" {
				return usageError{fmt.Errorf("run goplt from inside the goplt repository")}
			}
			oldRoot, cleanup, err := e.revision(args[0])
			if err != nil {
				return err
			}
			defer cleanup()
			old, _, err := contracts.Published(oldRoot)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			now, where, err := contracts.Published(e.root)
			if err != nil {
				return err
			}
			oldAPI, _, err := contracts.API(oldRoot)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			nowAPI, whereAPI, err := contracts.API(e.root)
			if err != nil {
				return err
			}
			n := 0
			report := func(name, rule, change, file string) {
				if file == "" {
					file = "(removed)"
				}
				fmt.Fprintf(e.stdout, "BREAKING %s [%s] %s (%s)\n", name, rule, change, file)
				n++
			}
			for _, c := range contracts.Compare(old, now) {
				report(c.Topic, c.Rule, c.Change.String(), where[c.Topic])
			}
			for _, c := range contracts.CompareAPI(oldAPI, nowAPI) {
				report(c.Route, c.Rule, c.Change.String(), whereAPI[c.Route])
			}
			if n > 0 {
				return &exitError{code: ExitFailure, msg: fmt.Sprintf("%d breaking change(s) to contracts since %s", n, args[0])}
			}
			fmt.Fprintf(e.stdout, "no breaking changes since %s (%d published events and %d routes compared)\n", args[0], len(old), len(oldAPI))
			return nil
		},
	}
	cmd.AddCommand(diff)
	return cmd
}

// revision returns a folder holding the manifests and schemas of ref: ref itself when it is a
// folder, else an export of the git ref (removed by cleanup).
func (e *env) revision(ref string) (dir string, cleanup func(), err error) {
	if st, err := os.Stat(ref); err == nil && st.IsDir() {
		return ref, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "goplt-contracts-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	tar := filepath.Join(tmp, "rev.tar")
	if out, err := exec.Command("git", "-C", e.root, "archive", "--format=tar", "-o", tar, ref, "manifests", "schemas").CombinedOutput(); err != nil {
		cleanup()
		return "", nil, usageError{fmt.Errorf("%q is neither a folder nor a git ref with manifests/ and schemas/: %v %s", ref, err, out)}
	}
	if out, err := exec.Command("tar", "-xf", tar, "-C", tmp).CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("unpack %s: %v %s", ref, err, out)
	}
	return filepath.Clean(tmp), cleanup, nil
}
