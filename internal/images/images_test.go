package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/cli"
	"github.com/goplt/goplt/internal/images"
	"github.com/goplt/goplt/internal/kubetest"
)

// goplt images, as a user runs it: every app's image and goplt's daprd, built twice with the
// same digests, pushed to a real registry (the CNCF distribution registry, Debian's
// docker-registry) on loopback, pulled back by digest, checked, unpacked, and each entrypoint
// run inside its root filesystem as the image's user.
func TestImagesBuildPushPullRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every app and pushes to a registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	registry := kubetest.StartRegistry(t)

	first, out1 := imagesCmd(t, ctx, "--out", t.TempDir(), "--push", registry+"/goplt")
	second, _ := imagesCmd(t, ctx, "--out", t.TempDir())
	if len(first) < 2 {
		t.Fatalf("built %d images:\n%s", len(first), out1)
	}
	for ref, d := range first {
		if second[ref] != d {
			t.Errorf("%s: %s, then %s: not reproducible", ref, d, second[ref])
		}
		t.Logf("%s %s %s", ref, d, sizes[ref])
	}

	// The kustomization names every image by digest in the registry.
	kz := regexp.MustCompile(`kustomization: (\S+)`).FindStringSubmatch(out1)
	if kz == nil {
		t.Fatalf("no kustomization written:\n%s", out1)
	}
	b, err := os.ReadFile(kz[1])
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string
		Images    []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			Digest  string `yaml:"digest"`
		}
	}
	if err := yaml.Unmarshal(b, &k); err != nil || len(k.Images) != len(first) || len(k.Resources) != 1 {
		t.Fatalf("kustomization %s: %v", b, err)
	}

	for _, im := range k.Images {
		ref := im.Name + ":" + tagOf(first, im.Name)
		if im.Digest != first[ref] || !strings.HasPrefix(im.NewName, registry+"/goplt/") {
			t.Errorf("kustomization image %+v, want %s in %s", im, first[ref], registry)
			continue
		}
		entry := im.NewName[strings.LastIndex(im.NewName, "/")+1:]
		if entry == "daprd" || entry == "notes" {
			pullAndRun(t, im.NewName+"@"+im.Digest, entry)
		}
	}
}

var sizes = map[string]string{}

// imagesCmd runs goplt images and returns the digest of each image by ref, and the output.
func imagesCmd(t *testing.T, ctx context.Context, args ...string) (map[string]string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, append([]string{"images"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("goplt images %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	digests := map[string]string{}
	line := regexp.MustCompile(`(?m)^(\S+:\S+)\s+(sha256:[0-9a-f]{64})\s+(.*)$`)
	for _, m := range line.FindAllStringSubmatch(stdout.String(), -1) {
		digests[m[1]] = m[2]
		sizes[m[1]] = m[3]
	}
	return digests, stdout.String()
}

func tagOf(digests map[string]string, repo string) string {
	for ref := range digests {
		if r, tag, ok := strings.Cut(ref, ":"); ok && r == repo {
			return tag
		}
	}
	return ""
}

// pullAndRun pulls ref by digest, checks its config, unpacks it and runs its entrypoint.
func pullAndRun(t *testing.T, ref, entry string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/" + entry}) || c.Labels["org.opencontainers.image.source"] == "" ||
		len(c.Labels["org.opencontainers.image.revision"]) < 7 || c.Labels["org.opencontainers.image.title"] != entry {
		t.Errorf("%s: config user %q entrypoint %v labels %v", ref, c.User, c.Entrypoint, c.Labels)
	}
	root := t.TempDir()
	if err := untar(mutate.Extract(img), root); err != nil {
		t.Fatalf("unpack %s: %v", ref, err)
	}
	for _, f := range []string{"etc/passwd", "home/nonroot", entry} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "bin/sh")); err == nil {
		t.Errorf("%s has a shell", ref)
	}
	if os.Geteuid() != 0 {
		t.Logf("not root: %s unpacked but not run (chroot needs root)", ref)
		return
	}
	// The entrypoint runs in the image's filesystem as its user: static, nothing else needed.
	args := map[string][]string{"daprd": {"--version"}, "notes": {"--help"}}[entry]
	cmd := exec.Command("/"+entry, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"HOME=/home/nonroot"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: images.User, Gid: images.User}}
	out, err := cmd.CombinedOutput()
	want := map[string]string{"daprd": binaries.DaprVersion, "notes": "migrate-only"}[entry]
	if !strings.Contains(string(out), want) {
		t.Errorf("%s %v in the image: %v\n%s", entry, args, err, out)
	}
}

// untar writes a flattened image filesystem into dir, refusing paths that leave it.
func untar(r io.ReadCloser, dir string) error {
	defer r.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, h.Name)
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("%s leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		if os.Geteuid() == 0 {
			_ = os.Lchown(p, h.Uid, h.Gid)
		}
	}
}
