package proc

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestDescribeQuotesLastLines(t *testing.T) {
	var out syncBuffer
	p, err := Start(Spec{Name: "failing", Path: "/bin/sh", Args: []string{"-c", "echo starting; echo 'fatal: port taken' >&2; exit 3"}, Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	d := p.Describe()
	for _, want := range []string{"failing", "exit status 3", "starting", "fatal: port taken"} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe() = %q, missing %q", d, want)
		}
	}
	if !strings.Contains(out.String(), "fatal: port taken\n") {
		t.Errorf("output not forwarded line by line: %q", out.String())
	}
}

func TestStopKillsTheWholeGroup(t *testing.T) {
	// The shell starts a child that ignores SIGTERM; Stop must still leave nothing behind.
	p, err := Start(Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; sleep 60 & echo $!; wait"}})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		if lines := p.Tail(); len(lines) > 0 {
			_, _ = fmt.Sscan(lines[0], &child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("child pid not printed")
	}
	start := time.Now()
	p.Stop(300 * time.Millisecond)
	if !p.Exited() {
		t.Fatal("process still running after Stop")
	}
	for i := 0; i < 50 && Alive(child); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if Alive(child) {
		_ = syscall.Kill(child, syscall.SIGKILL)
		t.Fatal("grandchild survived Stop")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Stop took %s", time.Since(start))
	}
}

func TestTailKeepsLastLines(t *testing.T) {
	tl := NewTail(3)
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		tl.Add(s)
	}
	if got := strings.Join(tl.Lines(), ","); got != "c,d,e" {
		t.Errorf("Lines() = %s", got)
	}
	if got := NewTail(3).Lines(); len(got) != 0 {
		t.Errorf("empty tail = %v", got)
	}
}

// Memory counts the process and what it spawned: a shell whose child holds 64 MiB.
func TestMemoryCountsDescendants(t *testing.T) {
	p, err := Start(Spec{Name: "holder", Path: "/bin/sh", Args: []string{"-c",
		`python3 -c 'import time; b = bytearray(64 << 20); time.sleep(30)' & wait`}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := p.Memory()
		if err != nil {
			t.Fatal(err)
		}
		if m.RSS >= 64<<20 && m.PSS >= 60<<20 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory = %s RSS, %s PSS; want the child's 64 MiB counted", MiB(m.RSS), MiB(m.PSS))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
