package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/images"
)

// sourceURL is the images' org.opencontainers.image.source label.
const sourceURL = "https://github.com/goplt/goplt"

func newImagesCmd(e *env) *cobra.Command {
	var dir, out, push, overlay string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build the OCI images of every app and of goplt's daprd, without Docker",
		Long: `images builds an OCI image per app (a static binary on an empty base, user 65532, no
shell, OCI labels with the source and the git revision) and one of goplt's daprd, the sidecar
the cluster runs (dapr.io/sidecar-image), named as the kubernetes profile's imagePrefix says.
Builds are reproducible: one commit gives the same digests. It writes an OCI image layout to
<out>/layout.

--push <registry> pushes them to <registry>/<name>:<tag> and writes <out>/kustomization.yaml, an
overlay of deploy/overlays/production (or --overlay's) that names every image by digest in that
registry: kubectl apply -k <out>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := e.loadManifests(dir)
			if err != nil {
				return err
			}
			prefix := set.Platform.Spec.Profiles["kubernetes"].ImagePrefix
			if out == "" {
				out = filepath.Join(e.home, "images")
			}
			// The kustomization names its base relative to out.
			if out, err = filepath.Abs(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			labels := map[string]string{"org.opencontainers.image.source": sourceURL, "org.opencontainers.image.revision": gitRevision(ctx, e.root)}
			bins := filepath.Join(out, "bin")
			if err := os.MkdirAll(bins, 0o755); err != nil {
				return err
			}
			var specs []images.Spec
			for _, name := range set.Order() {
				m := set.Module(name)
				if m.Spec.App.Build == "" {
					continue
				}
				id := m.Spec.App.ID
				fmt.Fprintf(e.stdout, "building %s %s\n", id, m.Spec.App.Build)
				bin := filepath.Join(bins, id)
				if err := images.GoBuild(ctx, e.root, m.Spec.App.Build, bin); err != nil {
					return err
				}
				specs = append(specs, images.Spec{Ref: compile.AppImage(prefix, id, m.Metadata.Version), Binary: bin, Entrypoint: id,
					Labels: withLabels(labels, id, m.Metadata.Version)})
			}
			daprd, err := e.resolver().Ensure(ctx, binaries.Daprd())
			if err != nil {
				return err
			}
			specs = append(specs, images.Spec{Ref: compile.SidecarImage(prefix), Binary: daprd, Entrypoint: "daprd",
				Labels: withLabels(labels, "daprd", binaries.DaprVersion)})
			built := map[string]v1.Image{}
			for _, s := range specs {
				img, err := images.Build(s)
				if err != nil {
					return fmt.Errorf("%s: %w", s.Ref, err)
				}
				built[s.Ref] = img
				d, _ := img.Digest()
				size, _ := images.CompressedSize(img)
				fmt.Fprintf(e.stdout, "%-55s %s  %.1f MB compressed\n", s.Ref, d, float64(size)/1e6)
			}
			if err := images.WriteLayout(filepath.Join(out, "layout"), built); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "OCI layout: %s\n", filepath.Join(out, "layout"))
			if push == "" {
				return nil
			}
			if overlay == "" {
				overlay = filepath.Join(e.root, compile.OverlayProduction)
			}
			return pushAll(ctx, e, out, prefix, push, overlay, specs, built)
		},
	}
	manifestsFlag(cmd, &dir)
	cmd.Flags().StringVar(&out, "out", "", "folder for the OCI layout and the kustomization (default <home>/images)")
	cmd.Flags().StringVar(&push, "push", "", "registry (host[:port][/path]) to push the images to")
	cmd.Flags().StringVar(&overlay, "overlay", "", "kustomization the pushed images' overlay builds on (default deploy/overlays/production)")
	return cmd
}

func withLabels(base map[string]string, title, version string) map[string]string {
	l := map[string]string{"org.opencontainers.image.title": title, "org.opencontainers.image.version": version}
	for k, v := range base {
		l[k] = v
	}
	return l
}

// pushAll pushes every image to registry and writes an overlay of overlay naming them by digest.
func pushAll(ctx context.Context, e *env, out, prefix, registry, overlay string, specs []images.Spec, built map[string]v1.Image) error {
	type image struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		Digest  string `yaml:"digest"`
	}
	var list []image
	for _, s := range specs {
		repoTag := strings.TrimPrefix(s.Ref, prefix+"/")
		target := strings.TrimSuffix(registry, "/") + "/" + repoTag
		ref, err := images.Push(ctx, target, built[s.Ref])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "pushed %s\n", ref)
		repo, digest, _ := strings.Cut(ref, "@")
		name, _, _ := strings.Cut(s.Ref, ":")
		list = append(list, image{Name: name, NewName: repo, Digest: digest})
	}
	abs, err := filepath.Abs(overlay)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(abs, "kustomization.yaml")); err != nil {
		return fmt.Errorf("--overlay %s: no kustomization.yaml there", overlay)
	}
	base, err := filepath.Rel(out, abs)
	if err != nil {
		return err
	}
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
		"resources": []string{filepath.ToSlash(base)}, "images": list,
	})
	if err != nil {
		return err
	}
	k := filepath.Join(out, "kustomization.yaml")
	if err := os.WriteFile(k, append([]byte("# Written by goplt images --push: "+filepath.ToSlash(base)+" with every image by digest.\n"), b...), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "kustomization: %s (kubectl apply --server-side -k %s)\n", k, out)
	return nil
}

// gitRevision is the checkout's commit, "unknown" outside git.
func gitRevision(ctx context.Context, root string) string {
	c := exec.CommandContext(ctx, "git", "rev-parse", "HEAD")
	c.Dir = root
	b, err := c.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
