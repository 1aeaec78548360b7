package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/manifest"
)

// generatedDirs are the folders goplt generate may remove stale files from (only files that
// carry its header or marker).
var generatedDirs = []string{compile.LocalComponents, compile.KubernetesComponents, "deploy", "apps"}

// manifestsFlag binds --manifests, the folder every manifest command reads.
func manifestsFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "manifests", "", "manifests folder (default <repo>/manifests)")
}

func (e *env) loadManifests(dir string) (*manifest.Set, error) {
	if e.root == "" {
		return nil, errors.New("run goplt from inside the goplt repository")
	}
	if dir == "" {
		dir = filepath.Join(e.root, "manifests")
	}
	set, err := manifest.LoadDir(dir, e.root)
	var ps manifest.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(e.stderr, p)
		}
		return nil, &exitError{code: ExitFailure, msg: fmt.Sprintf("%d problem(s) in the manifests", len(ps))}
	}
	return set, err
}

// compileChanges validates the manifests, compiles them and says which generated files would
// change on disk.
func (e *env) compileChanges(dir string) ([]compile.Artifact, []change, error) {
	set, err := e.loadManifests(dir)
	if err != nil {
		return nil, nil, err
	}
	return e.changesFor(set)
}

// changesFor compiles a loaded set and says which generated files would change on disk.
func (e *env) changesFor(set *manifest.Set) ([]compile.Artifact, []change, error) {
	arts, err := compile.Generate(set)
	if err != nil {
		return nil, nil, err
	}
	changes, err := planWrites(e.root, arts)
	return arts, changes, err
}

// staleError says which generated files are out of step with the manifests (nil: none).
func staleError(changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	paths := make([]string, len(changes))
	for i, c := range changes {
		paths[i] = c.path
	}
	return &exitError{code: ExitFailure, msg: fmt.Sprintf("%d generated file(s) out of date with manifests/ (%s): run `make generate`",
		len(changes), strings.Join(paths, ", "))}
}

// checkGenerated validates the manifests and fails when a generated file is out of step with
// them, naming the files and what to run.
func (e *env) checkGenerated(dir string) error {
	_, changes, err := e.compileChanges(dir)
	if err != nil {
		return err
	}
	return staleError(changes)
}

func newValidateCmd(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check every manifest against its schema and the platform's rules; print all problems (file:line:col)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := e.loadManifests(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "ok: platform and %d module(s) valid\n", len(set.Modules))
			return nil
		},
	}
	manifestsFlag(cmd, &dir)
	return cmd
}

func newGenerateCmd(e *env) *cobra.Command {
	var dir string
	var check bool
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Compile the manifests into Dapr resources, sidecar configurations, the run plan and dapr.yaml",
		Long: `generate validates manifests/ and writes what they compile to: components/local/ (Dapr
components, subscriptions, resiliency) and deploy/local/ (one sidecar configuration per app,
runplan.yaml for goplt run, dapr.yaml for dapr run -f). Output is deterministic; only files
whose content changed are rewritten, and generated files no longer produced are removed.
With a kubernetes profile in platform.yaml it also writes components/kubernetes/ and
deploy/kubernetes/ (Dapr CRDs, Deployments, Services, migration Jobs, ConfigMaps).
With --check nothing is written and the command fails (exit 1) if anything is stale.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			arts, changes, err := e.compileChanges(dir)
			if err != nil {
				return err
			}
			if check {
				if len(changes) == 0 {
					fmt.Fprintf(e.stdout, "ok: %d generated files up to date\n", len(arts))
					return nil
				}
				for _, c := range changes {
					fmt.Fprintf(e.stdout, "%-8s %s\n", c.what, c.path)
				}
				return staleError(changes)
			}
			for _, c := range changes {
				if err := c.apply(e.root); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%-8s %s\n", c.what, c.path)
			}
			fmt.Fprintf(e.stdout, "%d generated files, %d changed\n", len(arts), len(changes))
			return nil
		},
	}
	manifestsFlag(cmd, &dir)
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; fail if any generated file is stale")
	return cmd
}

func newGraphCmd(e *env) *cobra.Command {
	var dir string
	var dot bool
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Print the module dependency graph (text, or Graphviz DOT with --dot)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := e.loadManifests(dir)
			if err != nil {
				return err
			}
			if dot {
				fmt.Fprint(e.stdout, compile.GraphDOT(set))
			} else {
				fmt.Fprint(e.stdout, compile.GraphText(set))
			}
			return nil
		},
	}
	manifestsFlag(cmd, &dir)
	cmd.Flags().BoolVar(&dot, "dot", false, "print Graphviz DOT")
	return cmd
}

func newExplainCmd(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "explain <generated file>",
		Short: "Say which manifest entries (file:line:col) produced which part of a generated file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := e.loadManifests(dir)
			if err != nil {
				return err
			}
			arts, err := compile.Generate(set)
			if err != nil {
				return err
			}
			target, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(e.root, target)
			if err != nil {
				return err
			}
			for _, a := range arts {
				if filepath.Clean(a.Path) != rel {
					continue
				}
				fmt.Fprintf(e.stdout, "%s is generated from:\n", a.Path)
				for _, s := range a.Sources {
					fmt.Fprintf(e.stdout, "  %-60s <- %s\n", s.Part, s.Pos)
				}
				return nil
			}
			return usageError{fmt.Errorf("%s is not a file goplt generate writes (see docs/manifest.md for the list)", rel)}
		},
	}
	manifestsFlag(cmd, &dir)
	return cmd
}

type change struct {
	what string // "create", "update", "remove"
	path string
	data []byte
}

func (c change) apply(root string) error {
	full := filepath.Join(root, c.path)
	if c.what == "remove" {
		return os.Remove(full)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	tmp := full + ".tmp"
	if err := os.WriteFile(tmp, c.data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, full)
}

// planWrites compares the artifacts with the tree: new, changed, and generated files that are
// no longer produced. Hand-written files in the generated folders are never touched.
func planWrites(root string, arts []compile.Artifact) ([]change, error) {
	want := map[string]bool{}
	var out []change
	for _, a := range arts {
		want[filepath.ToSlash(a.Path)] = true
		old, err := os.ReadFile(filepath.Join(root, a.Path))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, change{"create", a.Path, a.Data})
		case err != nil:
			return nil, err
		case !bytes.Equal(old, a.Data):
			out = append(out, change{"update", a.Path, a.Data})
		}
	}
	for _, d := range generatedDirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if want[filepath.ToSlash(rel)] {
				return nil
			}
			b, err := os.ReadFile(p)
			if err == nil && compile.IsGenerated(b) {
				out = append(out, change{what: "remove", path: rel})
			}
			return err
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}
