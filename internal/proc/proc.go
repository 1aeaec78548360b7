// Package proc starts and supervises child processes: the infrastructure servers, the apps and
// their Dapr sidecars. Every child runs in its own process group so that stopping it also stops
// whatever it spawned (for example the binary under `go run`), and its recent output is kept so
// a failure can say why.
package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes a child process.
type Spec struct {
	Name string   // short name used in log prefixes and errors
	Path string   // executable
	Args []string // arguments, without the executable
	Env  []string // full environment; nil means the parent's
	Dir  string   // working directory; empty means the parent's

	// Output receives the child's stdout and stderr line by line (nil discards). Ignored when
	// LogFile is set.
	Output io.Writer
	// LogFile, when set, receives stdout and stderr directly, so the child keeps logging after
	// the parent exits (detached infrastructure).
	LogFile string
	// Detach starts the child in a new session so it outlives the parent. Otherwise the child
	// is killed when the parent dies (Linux parent-death signal).
	Detach bool
	// Credential runs the child as another user (PostgreSQL refuses to run as root).
	Credential *syscall.Credential
	// StopSignal is sent first on Stop; SIGTERM when zero.
	StopSignal syscall.Signal
}

// Process is a running (or finished) child.
type Process struct {
	spec Spec
	cmd  *exec.Cmd
	tail *Tail
	done chan struct{}
	err  error
	// copying tracks the goroutines that copy output, so Wait returns after the last line.
	copying sync.WaitGroup
}

// Start starts the child described by spec.
func Start(spec Spec) (*Process, error) {
	if spec.Name == "" {
		spec.Name = spec.Path
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: spec.Credential}
	if spec.Detach {
		cmd.SysProcAttr.Setsid = true
	} else {
		cmd.SysProcAttr.Setpgid = true
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	p := &Process{spec: spec, cmd: cmd, tail: NewTail(40), done: make(chan struct{})}

	var logFile *os.File
	if spec.LogFile != "" {
		f, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log file for %s: %w", spec.Name, err)
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("%s: stdout: %w", spec.Name, err)
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, fmt.Errorf("%s: stderr: %w", spec.Name, err)
		}
		out := spec.Output
		if out == nil {
			out = io.Discard
		}
		lw := &lineWriter{out: out}
		for _, r := range []io.Reader{stdout, stderr} {
			p.copying.Add(1)
			go func() {
				defer p.copying.Done()
				p.copyLines(r, lw)
			}()
		}
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Path, err)
	}
	if logFile != nil {
		logFile.Close() // the child holds its own descriptor
	}
	go func() {
		p.copying.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *Process) copyLines(r io.Reader, w *lineWriter) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		p.tail.Add(line)
		w.WriteLine(line)
	}
	// Drain anything left (for example an over-long line) so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// Name returns the process's short name.
func (p *Process) Name() string { return p.spec.Name }

// Pid returns the operating-system process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed (nil for exit status 0).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the most recent output lines (empty when output goes to a log file).
func (p *Process) Tail() []string { return p.tail.Lines() }

// Describe says how the process ended and quotes its last lines, for error messages.
func (p *Process) Describe() string {
	var b strings.Builder
	status := "exited"
	if err := p.Err(); err != nil {
		status = err.Error()
	}
	fmt.Fprintf(&b, "%s (pid %d) %s", p.spec.Name, p.Pid(), status)
	lines := p.Tail()
	if p.spec.LogFile != "" {
		lines = LastLines(p.spec.LogFile, 15)
	}
	if len(lines) > 0 {
		fmt.Fprintf(&b, "; last output:\n    %s", strings.Join(lines, "\n    "))
	}
	return b.String()
}

// Stop asks the process group to stop, waits up to grace, then kills it. It returns once the
// process has exited.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	sig := p.spec.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = syscall.Kill(-p.Pid(), sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
	// Children that left the group's leader behind still belong to the group.
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
}

// Alive reports whether a process with this pid exists (and is not a zombie).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill(0)
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// StopPid stops a process (and its group) that this process did not start, for example one
// left by an earlier `goplt infra up`: signal, wait up to grace, kill.
func StopPid(pid int, sig syscall.Signal, grace time.Duration) {
	if !Alive(pid) {
		return
	}
	_ = syscall.Kill(-pid, sig)
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && Alive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// LastLines returns up to n last lines of a file (nil if it cannot be read).
func LastLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 64 * 1024
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	t := NewTail(n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		t.Add(sc.Text())
	}
	return t.Lines()
}

// lineWriter serialises whole lines from several goroutines onto one writer.
type lineWriter struct {
	mu  sync.Mutex
	out io.Writer
}

func (w *lineWriter) WriteLine(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.out, s+"\n")
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }
