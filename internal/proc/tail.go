package proc

import "sync"

// Tail keeps the last n lines written to it. It is safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewTail returns a Tail that keeps n lines.
func NewTail(n int) *Tail {
	if n < 1 {
		n = 1
	}
	return &Tail{lines: make([]string, n)}
}

// Add records a line, dropping the oldest when full.
func (t *Tail) Add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines[t.next] = line
	t.next = (t.next + 1) % len(t.lines)
	if t.next == 0 {
		t.full = true
	}
}

// Lines returns the kept lines, oldest first.
func (t *Tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]string(nil), t.lines[:t.next]...)
	}
	out := make([]string, 0, len(t.lines))
	out = append(out, t.lines[t.next:]...)
	return append(out, t.lines[:t.next]...)
}
