package layers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/goplt/goplt/"

// Layers of internal/: a package may import its own layer and those listed below it.
var layer = map[string]int{
	"naming": 0, "manifest": 0, "runplan": 0, "brokeracl": 0, "sidecar": 0, "routetable": 0, "localsecrets": 0,
	"eventsig": 0, "token": 0, "contracts": 0, "envvar": 0, "telemetry": 0, "policydoc": 0, "platformsecrets": 0,
	"kernel": 1, "invoke": 1, "outbox": 1, "httpx": 1, "password": 1, "emailaddr": 1, "failpoint": 1,
	"compile":  2,
	"binaries": 3, "proc": 3, "ports": 3, "infra": 3, "kafkabroker": 3, "runner": 3, "stacktest": 3, "kubetest": 3,
	"images": 3, "clustersecrets": 3, "dashboard": 3, "repo": 3, "cli": 3, "layers": 3, "scaffold": 3, "bustool": 3, "watch": 3, "testkit": 3,
}

// appsImportableFromInternal are the app packages the tools may import (audit verify recomputes
// the hash chain the way audit does).
var appsImportableFromInternal = map[string]bool{"apps/audit/chain": true}

// appPackagesOthersMayImport: an app reaches another only through these.
var appPackagesOthersMayImport = []string{"client", "chain"}

func TestImportLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"internal/...", module+"apps/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			seen++
			if msg := check(pkg, imp); msg != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, msg)
			}
		}
	}
	if seen < 100 {
		t.Fatalf("only %d project imports seen: the listing is broken", seen)
	}
}

func check(pkg, imp string) string {
	if imp == "schemas" {
		return "" // the manifests' JSON Schemas, embedded: a contract, below everything
	}
	switch {
	case strings.HasPrefix(pkg, "internal/"):
		if strings.HasPrefix(imp, "apps/") {
			if appsImportableFromInternal[imp] && layer[top(pkg)] == 3 {
				return ""
			}
			return "internal packages do not import apps"
		}
		from, ok1 := layer[top(pkg)]
		to, ok2 := layer[top(imp)]
		if !ok1 || !ok2 {
			return "a package of internal/ not placed in a layer (add it to layers_test.go and doc.go)"
		}
		if to > from {
			return "an upward import (see internal/layers/doc.go)"
		}
	case strings.HasPrefix(pkg, "apps/"):
		if strings.HasPrefix(imp, "internal/") {
			if l, ok := layer[top(imp)]; !ok || l > 1 {
				return "apps build on the SDK and contracts only, not on the compiler or the tools"
			}
			return ""
		}
		app, other := appOf(pkg), appOf(imp)
		if app == other || strings.HasPrefix(pkg, "apps/gateway/e2e") {
			return ""
		}
		for _, p := range appPackagesOthersMayImport {
			if strings.HasPrefix(imp, "apps/"+other+"/"+p) {
				return ""
			}
		}
		return "an app reaches another only through its client package"
	}
	return ""
}

func top(p string) string {
	p = strings.TrimPrefix(p, "internal/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

func appOf(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// The rules can fail.
func TestLayeringRulesCatchViolations(t *testing.T) {
	for _, c := range [][2]string{
		{"internal/kernel", "internal/runner"},
		{"internal/compile", "internal/infra"},
		{"internal/token", "internal/kernel"},
		{"internal/kernel", "apps/auth/client"},
		{"apps/blog/blog", "internal/compile"},
		{"apps/blog/blog", "apps/identity/identity"},
		{"internal/newthing", "internal/token"},
	} {
		if check(c[0], c[1]) == "" {
			t.Errorf("%s -> %s passed", c[0], c[1])
		}
	}
	for _, c := range [][2]string{
		{"internal/cli", "apps/audit/chain"},
		{"apps/blog/blog", "apps/identity/client"},
		{"internal/runner", "internal/kernel"},
	} {
		if msg := check(c[0], c[1]); msg != "" {
			t.Errorf("%s -> %s refused: %s", c[0], c[1], msg)
		}
	}
}

// maxLines bounds a hand-written Go file: past it, a file holds several concerns.
const maxLines = 600

func TestNoHandWrittenFileIsTooLong(t *testing.T) {
	top := root(t)
	out, err := exec.Command("git", "-C", top, "ls-files", "--", "*.go").Output()
	if err != nil {
		t.Fatal(err)
	}
	files := strings.Fields(string(out))
	if len(files) < 100 {
		t.Fatalf("only %d Go files listed", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_gen.go") || strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(top, f))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > maxLines {
			t.Errorf("%s has %d lines; split it along its seams (at most %d)", f, n, maxLines)
		}
	}
}

func root(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
