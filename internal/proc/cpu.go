package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture Go
// supports (the kernel fixes it for user space whatever its internal HZ).
const clockTick = 10 * time.Millisecond

// CPUTime is the CPU time, user plus system, that pid has used so far (Linux /proc, 10 ms
// resolution): the difference of two readings is what the process spent between them.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	_, f, ok := statFields(b)
	const utime, stime = 14 - 3, 15 - 3 // proc(5) numbers fields from 1; f starts at field 3
	if !ok || len(f) <= stime {
		return 0, fmt.Errorf("cpu time of pid %d: malformed /proc stat", pid)
	}
	return ticks(fmt.Sprintf("cpu time of pid %d", pid), f[utime], f[stime])
}

// MachineCPU is the busy CPU time of the whole machine so far, all cores together: user,
// nice, system, irq and softirq from /proc/stat (idle, iowait and steal are not ours).
func MachineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine cpu time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("machine cpu time: unexpected /proc/stat line %q", line)
	}
	return ticks("machine cpu time", f[1], f[2], f[3], f[6], f[7])
}

// ticks sums clock-tick counts; what names the reading in errors.
func ticks(what string, fields ...string) (time.Duration, error) {
	var total time.Duration
	for _, s := range fields {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		total += time.Duration(n) * clockTick
	}
	return total, nil
}
