// Package images builds goplt's OCI images without Docker: one per app and one for goplt's
// daprd (the cluster's sidecar), each a static binary on an empty base with a non-root user,
// no shell, and OCI labels. Builds are reproducible: every file has a fixed time and the
// binaries are built without a build id, so one commit gives one digest.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the uid and gid every image runs as (distroless' "nonroot"); the generated
// Deployments run pods as the same.
const User = 65532

// epoch is every file's and the image's time: a fixed one keeps digests reproducible.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Spec is one image.
type Spec struct {
	Ref    string // where it will be pushed, for the OCI layout's ref name: "<prefix>/<name>:<tag>"
	Binary string // static Linux binary, put at /<Entrypoint>
	// Entrypoint is the binary's name in the image (at the root).
	Entrypoint string
	Labels     map[string]string // org.opencontainers.image.* and others
}

// Build makes the image: one layer holding the binary, /etc/passwd and /etc/group naming the
// non-root user, and its home; the config runs the binary as that user.
func Build(s Spec) (v1.Image, error) {
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", User, User)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", User)
	for _, f := range []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(group)},
		{tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(passwd)},
		{tar.Header{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "home/nonroot/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: User, Gid: User}, nil},
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil},
		{tar.Header{Name: s.Entrypoint, Typeflag: tar.TypeReg, Mode: 0o755}, bin},
	} {
		if err := add(&f.h, f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := tb.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "goplt images"}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", "amd64", v1.Time{Time: epoch}
	cfg.Config.User = fmt.Sprintf("%d:%d", User, User)
	cfg.Config.Entrypoint = []string{"/" + s.Entrypoint}
	cfg.Config.WorkingDir = "/home/nonroot"
	cfg.Config.Env = []string{"HOME=/home/nonroot"}
	cfg.Config.Labels = s.Labels
	return mutate.ConfigFile(img, cfg)
}

// GoBuild compiles the Go package pkg (run from dir) into a static Linux binary at out,
// reproducibly (no cgo, no build id, trimmed paths).
func GoBuild(ctx context.Context, dir, pkg, out string, ldflags ...string) error {
	flags := "-s -w -buildid="
	for _, f := range ldflags {
		flags += " " + f
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", flags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// WriteLayout writes the images, keyed by ref, into an OCI image layout at dir (replacing
// what was there), each annotated with its ref name.
func WriteLayout(dir string, imgs map[string]v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	refs := make([]string, 0, len(imgs))
	for r := range imgs {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		if err := p.AppendImage(imgs[r], layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": r, "io.containerd.image.name": r,
		})); err != nil {
			return err
		}
	}
	return nil
}

// Push pushes img as ref and returns its by-digest reference (repository@sha256:...).
func Push(ctx context.Context, ref string, img v1.Image, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, append(opts, remote.WithContext(ctx))...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Name() + "@" + d.String(), nil
}

// CompressedSize is the sum of the image's compressed layers, config and manifest: what a
// pull transfers.
func CompressedSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	m, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	c, err := img.RawConfigFile()
	if err != nil {
		return 0, err
	}
	return n + int64(len(m)+len(c)), nil
}
