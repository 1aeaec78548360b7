package stacktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goplt/goplt/internal/repo"
)

// CopyRepository copies the repository's files (tracked, and untracked ones git does not
// ignore) into a temporary folder and returns it, for tests that edit code or manifests as a
// developer would (goplt new module, goplt run --watch).
func CopyRepository(tb testing.TB) string {
	tb.Helper()
	root, err := repo.RootFromWd()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		tb.Fatalf("git ls-files: %v", err)
	}
	dst := tb.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			tb.Fatal(err)
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}
