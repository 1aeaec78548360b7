package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/scaffold"
)

func newNewCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Scaffold a new part of the platform (a module)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{errors.New("new needs a subcommand: module")}
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "module <name>",
		Short: "Scaffold a module: manifest, app on the kernel, migration, event schema, tests",
		Long: `new module writes a working module named <name>, modelled on apps/notes:

  manifests/<name>.yaml                         routes, permissions, roles, events, schema
  apps/<name>/main.go, main_test.go, README.md  the command and its declaration check
  apps/<name>/<name>/<name>.go, <name>_test.go  the module on the kernel, a unit test
  apps/<name>/<name>/integration_test.go        through the gateway (docs/testing.md)
  apps/<name>/<name>/migrations/00001_<name>.sql
  schemas/events/<name>.item.created.v1.json

It adds the module to the gateway's dependsOn (the gateway starts after it), then generates
(goplt generate), so go build ./..., go test ./apps/<name>/... and goplt run work at once.
Nothing is written when the name is taken or invalid; if the manifests do not validate with
the new module, everything written is taken back.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.newModule(args[0])
		},
	})
	return cmd
}

// newModule scaffolds module name, all or nothing.
func (e *env) newModule(name string) error {
	if e.root == "" {
		return fmt.Errorf("run goplt from inside the goplt repository (no go.mod of github.com/goplt/goplt above %s)", mustWd())
	}
	if err := scaffold.CheckName(name); err != nil {
		return usageError{err}
	}
	set, err := e.loadManifests("")
	if err != nil {
		return err
	}
	if err := nameFree(set, name); err != nil {
		return usageError{err}
	}
	files, err := scaffold.Module(name)
	if err != nil {
		return err
	}
	for _, f := range append(files, scaffold.File{Path: filepath.Join("apps", name)}) {
		if _, err := os.Stat(filepath.Join(e.root, f.Path)); !errors.Is(err, fs.ErrNotExist) {
			return usageError{fmt.Errorf("%s already exists: module %q would overwrite it; choose another name", f.Path, name)}
		}
	}
	gwFile, gwSrc, gwNew, err := gatewayWithDependency(set, name)
	if err != nil {
		return err
	}

	// Write, then validate and generate; on any failure take back what was written.
	var written []string
	undo := func() {
		for i := len(written) - 1; i >= 0; i-- {
			_ = os.Remove(filepath.Join(e.root, written[i]))
		}
		_ = os.RemoveAll(filepath.Join(e.root, "apps", name))
		if gwFile != "" {
			_ = os.WriteFile(gwFile, gwSrc, 0o644)
		}
	}
	for _, f := range files {
		full := filepath.Join(e.root, f.Path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			undo()
			return err
		}
		if err := os.WriteFile(full, f.Data, 0o644); err != nil {
			undo()
			return err
		}
		written = append(written, f.Path)
	}
	if gwFile != "" {
		if err := os.WriteFile(gwFile, gwNew, 0o644); err != nil {
			undo()
			return err
		}
	}
	_, changes, err := e.compileChanges("")
	if err != nil {
		undo()
		return fmt.Errorf("the manifests do not validate with module %s, nothing was kept: %w", name, err)
	}
	for _, f := range files {
		fmt.Fprintf(e.stdout, "%-8s %s\n", "create", f.Path)
	}
	if gwFile != "" {
		rel, _ := filepath.Rel(e.root, gwFile)
		fmt.Fprintf(e.stdout, "%-8s %s (dependsOn %s)\n", "update", rel, name)
	}
	for _, c := range changes {
		if err := c.apply(e.root); err != nil {
			return fmt.Errorf("generate: %w (run make generate to finish)", err)
		}
		fmt.Fprintf(e.stdout, "%-8s %s\n", c.what, c.path)
	}
	fmt.Fprintf(e.stdout, `
module %[1]s is ready:
  go test ./apps/%[1]s/...   its tests
  make run   the platform with it; then, as a user with the role %[1]s.writer,
             POST /%[1]s/items {"text": "..."} and GET /%[1]s/items/{id} through the gateway
  apps/%[1]s/README.md   what each file is for
`, name)
	return nil
}

// nameFree says whether a module, app id, topic prefix or route prefix already uses name.
func nameFree(set *manifest.Set, name string) error {
	for _, m := range set.Modules {
		if m.Metadata.Name == name || m.Spec.App.ID == name {
			return fmt.Errorf("module %q already exists (%s)", name, m.File())
		}
		for _, r := range m.Spec.Routes {
			if r.Path == "/"+name || strings.HasPrefix(r.Path, "/"+name+"/") {
				return fmt.Errorf("module %s already serves %s %s, under /%s: choose another name", m.Metadata.Name, r.Method, r.Path, name)
			}
		}
	}
	return nil
}

// gatewayWithDependency returns the gateway's manifest file, its text, and its text with module
// name added to dependsOn, so the gateway starts after it. With no gateway it returns "".
func gatewayWithDependency(set *manifest.Set, name string) (file string, src, updated []byte, err error) {
	if set.Platform == nil || set.Platform.Spec.Gateway == "" {
		return "", nil, nil, nil
	}
	var gw *manifest.Module
	for _, m := range set.Modules {
		if m.Spec.App.ID == set.Platform.Spec.Gateway {
			gw = m
		}
	}
	if gw == nil {
		return "", nil, nil, nil
	}
	file = filepath.Join(set.Root, gw.File()) // File is relative to the repository root
	src, err = os.ReadFile(file)
	if err != nil {
		return "", nil, nil, err
	}
	entry := fmt.Sprintf("{name: %s, version: %s}", name, strconv.Quote(">=0.1.0"))
	deps := gw.Spec.DependsOn
	if len(deps) == 0 {
		// Nothing to append to; the gateway still reaches the module once it is up.
		return "", nil, nil, nil
	}
	first := gw.PosOf("/spec/dependsOn/0").Line
	last := gw.PosOf(fmt.Sprintf("/spec/dependsOn/%d", len(deps)-1)).Line
	updated, err = scaffold.AddDependency(src, first, last, entry)
	if err != nil {
		return "", nil, nil, fmt.Errorf("add %s to %s's dependsOn: %w", name, gw.File(), err)
	}
	return file, src, updated, nil
}
