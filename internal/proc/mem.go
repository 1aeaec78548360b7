package proc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mem is the memory of a process and everything it spawned (PostgreSQL's backends, the binary
// under `go run`), in bytes.
type Mem struct {
	// RSS sums resident set sizes; pages shared between the processes count once per process.
	RSS int64
	// PSS sums proportional set sizes: shared pages are split between their users, so PSS
	// totals over several processes add up to what they really occupy.
	PSS int64
	// Private is anonymous memory (heap, stacks): what the process costs beyond the pages of
	// its executable, which every process running the same binary shares.
	Private int64
}

// Add returns the sum of two measurements.
func (m Mem) Add(o Mem) Mem {
	return Mem{RSS: m.RSS + o.RSS, PSS: m.PSS + o.PSS, Private: m.Private + o.Private}
}

// MiB formats bytes in mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Memory measures the process and its descendants (Linux /proc).
func (p *Process) Memory() (Mem, error) { return TreeMemory(p.Pid()) }

// TreeMemory measures pid and its descendants.
func TreeMemory(pid int) (Mem, error) {
	var total Mem
	pids := append([]int{pid}, Descendants(pid)...)
	for _, q := range pids {
		m, err := memoryOf(q)
		if err != nil {
			if q == pid {
				return Mem{}, err
			}
			continue // a descendant that just exited
		}
		total = total.Add(m)
	}
	return total, nil
}

func memoryOf(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	var m Mem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || fs[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil {
			continue
		}
		switch fs[0] {
		case "Rss:":
			m.RSS = kb << 10
		case "Pss:":
			m.PSS = kb << 10
		case "Anonymous:":
			m.Private = kb << 10
		}
	}
	return m, sc.Err()
}

// Descendants lists every process below pid, from each process's parent id in /proc.
func Descendants(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	children := map[int][]int{}
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		self, fs, ok := statFields(b)
		if !ok || len(fs) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fs[1]); err == nil {
			children[ppid] = append(children[ppid], self)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		for _, c := range children[q] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// statFields splits a /proc/<pid>/stat line: the pid, and the fields after the command name
// (fields[0] is proc(5)'s field 3, the state). The name may hold spaces and parentheses, so
// it ends at the last ')'.
func statFields(b []byte) (pid int, fields []string, ok bool) {
	line := string(b)
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, nil, false
	}
	head := strings.Fields(line[:i])
	if len(head) == 0 {
		return 0, nil, false
	}
	pid, err := strconv.Atoi(head[0])
	if err != nil {
		return 0, nil, false
	}
	return pid, strings.Fields(line[i+1:]), true
}
