package ports

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// testPool finds size consecutive free ports at the top of the default pool: live stacks take
// the lowest ports first, so the top is where tests beside them find room. The tests use a
// private lock folder, so they never touch a live stack's locks.
func testPool(t *testing.T, size int) Range {
	t.Helper()
	def, err := DefaultPool(EphemeralRange())
	if err != nil {
		t.Skip(err)
	}
	hi := def.Hi
	for lo := hi - 1; lo >= def.Lo; lo-- {
		if !Free(lo) {
			hi = lo
			continue
		}
		if hi-lo == size {
			return Range{lo, hi}
		}
	}
	t.Skipf("no %d consecutive free ports in %s", size, def)
	return Range{}
}

func TestTakeReservesDistinctPortsInThePool(t *testing.T) {
	pool := testPool(t, 64)
	a, err := New(pool, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got, err := a.Take(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range got {
		if !pool.contains(p) {
			t.Errorf("port %d outside the pool %s", p, pool)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		if !a.Held(p) {
			t.Errorf("port %d not held", p)
		}
	}
}

func TestTwoAllocatorsNeverShareAPort(t *testing.T) {
	pool := testPool(t, 40)
	dir := t.TempDir()
	// Two allocators on one lock folder stand for two processes: flock conflicts between open
	// file descriptions even within one process.
	a, _ := New(pool, dir)
	b, _ := New(pool, dir)
	defer a.Close()
	defer b.Close()
	pa, err := a.Take(20)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Take(15)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range pa {
		for _, y := range pb {
			if x == y {
				t.Fatalf("port %d reserved by both allocators", x)
			}
		}
	}
	// The pool has 40: a holds 20, b 15; b cannot take 10 more until a releases.
	if _, err := b.Take(10); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Take past the pool: err = %v, want ErrExhausted", err)
	}
	a.Release(pa[:10]...)
	if _, err := b.Take(10); err != nil {
		t.Fatalf("Take after release: %v", err)
	}
}

func TestTakeSkipsPortsInUse(t *testing.T) {
	pool := testPool(t, 16)
	// Occupy the first free port of the pool with a listener of "another program".
	var busy net.Listener
	for p := pool.Lo; p < pool.Hi && busy == nil; p++ {
		busy, _ = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	}
	if busy == nil {
		t.Skip("no port of the test pool is free")
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	a, _ := New(pool, t.TempDir())
	defer a.Close()
	got, err := a.Take(pool.Hi - busyPort - 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if p == busyPort {
			t.Fatalf("port %d is in use but was handed out", p)
		}
	}
}

func TestTakeIsDeterministic(t *testing.T) {
	pool := testPool(t, 32)
	dir := t.TempDir()
	a, _ := New(pool, dir)
	first, err := a.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, _ := New(pool, dir)
	defer b.Close()
	second, err := b.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("a fresh allocator chose %v, the first chose %v", second, first)
		}
	}
}

func TestDefaultPoolStaysOutOfTheEphemeralRange(t *testing.T) {
	for _, c := range []struct {
		eph  Range
		want Range
		err  bool
	}{
		{Range{32768, 61000}, Range{32768 - PoolSize, 32768}, false}, // Linux default
		{Range{49152, 65536}, Range{49152 - PoolSize, 49152}, false}, // IANA (macOS, Windows)
		{Range{1024, 60000}, Range{60000, 60000 + PoolSize}, false},  // no room below
		{Range{1024, 65536}, Range{}, true},                          // no room anywhere
	} {
		got, err := DefaultPool(c.eph)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("DefaultPool(%s) = %s, %v; want %s (error %v)", c.eph, got, err, c.want, c.err)
		}
	}
}

func TestNewRejectsABadPool(t *testing.T) {
	if _, err := New(Range{100, 100}, t.TempDir()); err == nil {
		t.Fatal("empty pool accepted")
	}
}
