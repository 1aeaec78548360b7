package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv("FAILPOINT_CHILD") != "" {
		Hit("other")
		Hit("step")
		os.Stdout.WriteString("survived\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The armed point kills the process the first time only; other points never do.
func TestHitKillsOnce(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "fired")
	otherMarker := filepath.Join(t.TempDir(), "disarmed")
	if err := os.WriteFile(otherMarker, nil, 0o644); err != nil { // made first: "other" is not armed
		t.Fatal(err)
	}
	run := func() (string, error) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", Env+"=other@"+otherMarker+",step@"+marker)
		out, err := cmd.Output()
		return string(out), err
	}
	out, err := run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL || strings.Contains(out, "survived") {
		t.Fatalf("first run: %v %q, want killed by SIGKILL", err, out)
	}
	if out, err := run(); err != nil || !strings.Contains(out, "survived") {
		t.Fatalf("second run: %v %q, want it to go on", err, out)
	}
}
