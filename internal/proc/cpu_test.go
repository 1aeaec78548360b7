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
