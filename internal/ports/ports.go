// Package ports hands out loopback TCP ports that no other process of the local stack can take
// between the moment one is chosen and the moment the child process binds it.
//
// "Listen on :0, close, pass the number to a child" loses that race on a busy machine: the
// kernel picks :0 ports from its ephemeral range, the same range every outbound connection
// (nine sidecars talking to Kafka, Consul and PostgreSQL) draws its source ports from. An
// Allocator instead picks from a pool below the ephemeral range, which the kernel never hands
// out by itself, skips ports something already listens on, and reserves each port it returns
// across processes (make run beside make test) with an advisory lock on a file named for the
// port, held until Release or Close, or until the process dies (the kernel drops the lock).
package ports

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// PoolSize is how many ports the pool holds: enough for dozens of app instances with their
// sidecars (five ports each) and several stacks side by side.
const PoolSize = 2048

// Range is a half-open interval of ports [Lo, Hi).
type Range struct{ Lo, Hi int }

func (r Range) String() string      { return fmt.Sprintf("%d-%d", r.Lo, r.Hi-1) }
func (r Range) contains(p int) bool { return p >= r.Lo && p < r.Hi }

// EphemeralRange reads the kernel's ephemeral port range (Linux); it returns the Linux default
// 32768-60999 where the file cannot be read.
func EphemeralRange() Range {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && lo > 0 && hi >= lo {
				return Range{lo, hi + 1}
			}
		}
	}
	return Range{32768, 61000}
}

// DefaultPool is the PoolSize ports just below the ephemeral range (30720-32767 on Linux
// defaults), or just above it when there is no room below.
func DefaultPool(eph Range) (Range, error) {
	const floor = 1024 // below this binding needs privileges
	if eph.Lo-PoolSize >= floor {
		return Range{eph.Lo - PoolSize, eph.Lo}, nil
	}
	if eph.Hi+PoolSize <= 65536 {
		return Range{eph.Hi, eph.Hi + PoolSize}, nil
	}
	return Range{}, fmt.Errorf("ports: the ephemeral range %s leaves no %d ports outside it; narrow net.ipv4.ip_local_port_range", eph, PoolSize)
}

// Allocator hands out reserved ports from a pool. It is safe for concurrent use.
type Allocator struct {
	pool    Range
	lockDir string

	mu   sync.Mutex
	next int
	held map[int]*os.File
}

// New returns an allocator over pool that keeps its lock files in lockDir (created if
// missing). Use Default for the machine's pool.
func New(pool Range, lockDir string) (*Allocator, error) {
	if pool.Lo < 1 || pool.Hi > 65536 || pool.Hi <= pool.Lo {
		return nil, fmt.Errorf("ports: invalid pool %s", pool)
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("ports: lock folder: %w", err)
	}
	return &Allocator{pool: pool, lockDir: lockDir, next: pool.Lo, held: map[int]*os.File{}}, nil
}

// Default returns an allocator over DefaultPool, with its locks in the temporary folder (per
// user, so two users' stacks do not read each other's locks; the listen check still keeps them
// apart).
func Default() (*Allocator, error) {
	pool, err := DefaultPool(EphemeralRange())
	if err != nil {
		return nil, err
	}
	return New(pool, filepath.Join(os.TempDir(), "goplt-ports-"+strconv.Itoa(os.Getuid())))
}

// Pool is the range the allocator draws from.
func (a *Allocator) Pool() Range { return a.pool }

// ErrExhausted means every port of the pool is reserved or in use.
var ErrExhausted = errors.New("ports: pool exhausted")

// Take reserves n distinct ports. The scan is deterministic (lowest free ports first), so an
// unchanged machine gets the same ports run after run.
func (a *Allocator) Take(n int) ([]int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]int, 0, n)
	size := a.pool.Hi - a.pool.Lo
	for tried := 0; len(out) < n && tried < size; tried++ {
		p := a.next
		a.next++
		if a.next >= a.pool.Hi {
			a.next = a.pool.Lo
		}
		if _, mine := a.held[p]; mine {
			continue
		}
		f, ok := a.lock(p)
		if !ok {
			continue
		}
		if !Free(p) {
			f.Close()
			continue
		}
		a.held[p] = f
		out = append(out, p)
	}
	if len(out) < n {
		a.releaseLocked(out)
		return nil, fmt.Errorf("%w: %d ports wanted from %s", ErrExhausted, n, a.pool)
	}
	return out, nil
}

// lock takes the cross-process reservation of port p without waiting.
func (a *Allocator) lock(p int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(a.lockDir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// Free says whether nothing listens on 127.0.0.1:p (nor on the wildcard address).
func Free(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Release gives ports back; ports not held are ignored.
func (a *Allocator) Release(ports ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseLocked(ports)
}

func (a *Allocator) releaseLocked(ports []int) {
	for _, p := range ports {
		if f, ok := a.held[p]; ok {
			f.Close() // closing the descriptor drops the flock
			delete(a.held, p)
		}
	}
}

// Held reports whether the allocator holds port p.
func (a *Allocator) Held(p int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.held[p]
	return ok
}

// Close releases every port.
func (a *Allocator) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, f := range a.held {
		f.Close()
		delete(a.held, p)
	}
}
