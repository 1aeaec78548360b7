package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goplt/goplt/internal/stacktest"
)

// copyRepo copies the repository into a temporary folder and makes it the working directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	dst := stacktest.CopyRepository(t)
	t.Chdir(dst)
	return dst
}

// treeSum hashes every file's path and content under dir.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p + "\x00"))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Bad names and taken names are refused with a clear message, and nothing is written.
func TestNewModuleRefusesBadAndTakenNames(t *testing.T) {
	dir := copyRepo(t)
	if err := os.MkdirAll(filepath.Join(dir, "apps", "leftover"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := treeSum(t, dir)
	for name, msg := range map[string]string{
		"My-Module": "use 2 to 30 lowercase letters",
		"func":      "is reserved",
		"contract":  "is reserved",
		"notes":     `module "notes" already exists (manifests/notes.yaml)`,
		"gateway":   `module "gateway" already exists`,
		"leftover":  "apps/leftover already exists",
	} {
		code, _, stderr := run("new", "module", name)
		if code != ExitUsage || !strings.Contains(stderr, msg) {
			t.Errorf("new module %s: exit %d, %q; want exit %d and %q", name, code, stderr, ExitUsage, msg)
		}
	}
	if code, _, stderr := run("new", "module"); code != ExitUsage || !strings.Contains(stderr, "accepts 1 arg") {
		t.Errorf("new module without a name: exit %d, %q", code, stderr)
	}
	if after := treeSum(t, dir); after != before {
		t.Error("a refused new module changed the repository")
	}
}

// A scaffolded module validates, builds, passes its unit tests, is wired into the gateway and
// the run plan, and its integration test passes on the real platform, in a copy of this
// repository.
func TestNewModuleBuildsAndPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests the whole repository copy")
	}
	dir := copyRepo(t)
	code, stdout, stderr := run("new", "module", "greetings")
	if code != ExitOK {
		t.Fatalf("new module: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"create   manifests/greetings.yaml", "create   apps/greetings/contract/contract_gen.go",
		"update   manifests/gateway.yaml (dependsOn greetings)", "update   deploy/local/runplan.yaml"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if code, out, errb := run("validate"); code != ExitOK {
		t.Errorf("validate: exit %d %s %s", code, out, errb)
	}
	if code, out, errb := run("generate", "--check"); code != ExitOK {
		t.Errorf("generate --check: exit %d %s %s", code, out, errb)
	}
	for _, file := range []string{"deploy/local/runplan.yaml", "deploy/gateway/routes.json", "deploy/kubernetes/kustomization.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || !strings.Contains(string(b), "greetings") {
			t.Errorf("%s does not name the new module (%v)", file, err)
		}
	}
	// -trimpath: the copy's packages hit the build cache of the original's.
	for _, args := range [][]string{
		{"build", "-trimpath", "./apps/...", "./tools/goplt"},
		{"vet", "./apps/greetings/..."},
		{"test", "-trimpath", "-short", "-count=1", "./apps/greetings/..."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Its integration test, against the real platform (testkit starts the module with its
	// sidecar and what it needs, as goplt run does), passes as scaffolded.
	cmd := exec.Command("go", "test", "-count=1", "-run", "TestCreateAndRead", "-v", "./apps/greetings/greetings/")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestCreateAndRead") {
		t.Errorf("the scaffolded integration test: %v\n%s", err, out)
	}

	// The same name again is taken now.
	if code, _, stderr := run("new", "module", "greetings"); code != ExitUsage || !strings.Contains(stderr, "already exists") {
		t.Errorf("second new module greetings: exit %d %q", code, stderr)
	}
}
