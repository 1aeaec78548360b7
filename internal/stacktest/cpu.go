package stacktest

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/proc"
	"github.com/goplt/goplt/internal/runner"
)

// CPUMeter reads the CPU time of the stack's processes, of this test process ("load": the
// load generator) and of the whole machine ("machine"), for benchmarks that report where a
// request's or an event's CPU goes. Infrastructure processes count with their children
// (PostgreSQL's backends).
type CPUMeter struct {
	pids map[string]int
}

// CPUReading is CPU time by process name: an app id, "<app>.dapr" for its sidecar, an
// infrastructure service (postgres, kafka, consul, sentry), "load" and "machine".
type CPUReading map[string]time.Duration

// CPUMeter measures the infrastructure, the given apps of g and their sidecars.
func (s *Stack) CPUMeter(g *runner.Group, apps ...string) *CPUMeter {
	m := &CPUMeter{pids: map[string]int{"load": os.Getpid()}}
	for _, name := range []string{"postgres", "kafka", "consul", "sentry"} {
		if p := s.Infra.Process(name); p != nil {
			m.pids[name] = p.Pid()
		}
	}
	for _, id := range apps {
		a := g.App(id)
		if p := a.Process(); p != nil {
			m.pids[id] = p.Pid()
		}
		if p := a.Sidecar(); p != nil {
			m.pids[id+".dapr"] = p.Pid()
		}
	}
	return m
}

// Read takes a reading; the difference of two is what each process spent between them.
func (m *CPUMeter) Read() (CPUReading, error) {
	r := CPUReading{}
	for name, pid := range m.pids {
		all := []int{pid}
		if name != "load" {
			all = append(all, proc.Descendants(pid)...)
		}
		for _, q := range all {
			d, err := proc.CPUTime(q)
			if err != nil {
				if q == pid {
					return nil, err
				}
				continue // a child that just exited
			}
			r[name] += d
		}
	}
	d, err := proc.MachineCPU()
	if err != nil {
		return nil, err
	}
	r["machine"] = d
	return r, nil
}

// Minus is r - o, process by process.
func (r CPUReading) Minus(o CPUReading) CPUReading {
	d := CPUReading{}
	for k, v := range r {
		d[k] = v - o[k]
	}
	return d
}

// Plus is r + o, process by process.
func (r CPUReading) Plus(o CPUReading) CPUReading {
	d := maps.Clone(r)
	if d == nil {
		d = CPUReading{}
	}
	for k, v := range o {
		d[k] += v
	}
	return d
}

// Per is the CPU time of name divided by n (requests, events), in µs.
func (r CPUReading) Per(name string, n float64) float64 { return r[name].Seconds() * 1e6 / n }

// Table renders every process's CPU time divided by n, in µs, machine first, then the rest
// from the largest.
func (r CPUReading) Table(n float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine %.0f", r.Per("machine", n))
	names := slices.Collect(maps.Keys(r))
	slices.SortFunc(names, func(x, y string) int { return int(r[y] - r[x]) })
	for _, k := range names {
		if k != "machine" && r[k] > 0 {
			fmt.Fprintf(&b, ", %s %.0f", k, r.Per(k, n))
		}
	}
	return b.String()
}
