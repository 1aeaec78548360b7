package proc

import (
	"testing"
	"time"
)

// A process that spins for a while has used about that much CPU; one that sleeps has not.
func TestCPUTimeCountsWhatTheProcessSpent(t *testing.T) {
	spin, err := Start(Spec{Name: "spin", Path: "/bin/sh", Args: []string{"-c", `while :; do :; done`}})
	if err != nil {
		t.Fatal(err)
	}
	defer spin.Stop(time.Second)
	idle, err := Start(Spec{Name: "idle", Path: "/bin/sleep", Args: []string{"30"}})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Stop(time.Second)
	machine0, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	busy, err := CPUTime(spin.Pid())
	if err != nil {
		t.Fatal(err)
	}
	slept, err := CPUTime(idle.Pid())
	if err != nil {
		t.Fatal(err)
	}
	machine1, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Two cores shared with whatever else runs: the spinner gets at least a good part of one.
	if busy < 100*time.Millisecond {
		t.Errorf("spinning process used %s of CPU in 600 ms; want at least 100 ms", busy)
	}
	if slept > 50*time.Millisecond {
		t.Errorf("sleeping process used %s of CPU", slept)
	}
	if d := machine1 - machine0; d < 100*time.Millisecond {
		t.Errorf("machine busy time grew by %s while a process spun; want at least 100 ms", d)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Error("a pid that does not exist: no error")
	}
}

// A command name with spaces and parentheses does not shift the fields after it.
func TestStatFields(t *testing.T) {
	pid, f, ok := statFields([]byte("42 (we) ird (name) S 7 42 42 0 -1 4194560 1 0 0 0 250 30 0 0 20 0 1 0\n"))
	if !ok || pid != 42 || f[0] != "S" || f[1] != "7" || f[11] != "250" || f[12] != "30" {
		t.Fatalf("pid %d, fields %q, ok %v", pid, f, ok)
	}
	for _, bad := range []string{"", "no parenthesis", ") S 1", "x (c) S 1"} {
		if _, _, ok := statFields([]byte(bad)); ok {
			t.Errorf("%q: parsed", bad)
		}
	}
}
