package stacktest

import (
	"testing"
	"time"
)

// Readings subtract and add process by process, and render per unit of work, machine first
// and then the largest.
func TestCPUReadings(t *testing.T) {
	before := CPUReading{"machine": 1 * time.Second, "blog": 200 * time.Millisecond, "load": 0}
	after := CPUReading{"machine": 3 * time.Second, "blog": 600 * time.Millisecond, "load": 100 * time.Millisecond}
	spent := after.Minus(before)
	if spent["machine"] != 2*time.Second || spent["blog"] != 400*time.Millisecond || spent["load"] != 100*time.Millisecond {
		t.Fatalf("minus: %v", spent)
	}
	total := spent.Plus(spent).Plus(nil)
	if total["blog"] != 800*time.Millisecond {
		t.Fatalf("plus: %v", total)
	}
	if got := CPUReading(nil).Plus(spent); got["blog"] != 400*time.Millisecond {
		t.Fatalf("nil plus: %v", got)
	}
	if got := spent.Per("blog", 1000); got != 400 {
		t.Errorf("per: %v µs, want 400", got)
	}
	if got, want := spent.Table(1000), "machine 2000, blog 400, load 100"; got != want {
		t.Errorf("table: %q, want %q", got, want)
	}
}
