package infra

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/internal/binaries"
	"github.com/goplt/goplt/internal/ports"
	"github.com/goplt/goplt/internal/proc"
	"github.com/goplt/goplt/internal/repo"
)

func testHome(t *testing.T) string {
	t.Helper()
	// Reachable by the postgres user when tests run as root (t.TempDir is 0700).
	home, err := os.MkdirTemp("", "goplt-infra-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	return home
}

func fakeConfig(t *testing.T) Config {
	t.Helper()
	alloc, err := ports.Default()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alloc.Close)
	ps, err := FreePorts(alloc, 1)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Home: testHome(t), Ports: ps, Consul: "/bin/false", Sentry: "/bin/false", Self: "/bin/false"}
}

func TestTakenPortIsNamed(t *testing.T) {
	cfg := fakeConfig(t)
	l, err := net.Listen("tcp", addr(cfg.Ports.ConsulHTTP))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Up(context.Background(), cfg)
	var pe *PortInUseError
	if !errors.As(err, &pe) || pe.Port != cfg.Ports.ConsulHTTP || pe.Service != "consul http" {
		t.Fatalf("error = %v, want a PortInUseError for consul http on %d", err, cfg.Ports.ConsulHTTP)
	}
	if !strings.Contains(err.Error(), "infra.test") {
		t.Errorf("error does not name the process holding the port: %v", err)
	}
}

func TestPortsValidate(t *testing.T) {
	p := DefaultPorts()
	p.SentryGRPC = p.Postgres
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "both use port 25432") {
		t.Errorf("duplicate port: %v", err)
	}
	p = DefaultPorts()
	p.Kafka = nil
	if err := p.Validate(); err == nil {
		t.Error("no kafka port accepted")
	}
	p = DefaultPorts()
	p.ConsulDNS = 70000
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "consul dns port 70000") {
		t.Errorf("out of range: %v", err)
	}
}

func TestMissingPostgresBinaries(t *testing.T) {
	cfg := fakeConfig(t)
	cfg.PostgresBin = filepath.Join(cfg.Home, "no-such-bin")
	_, err := Up(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL server binary not found") || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("error = %v", err)
	}
}

func TestDamagedDataFolder(t *testing.T) {
	if _, err := PostgresBinDir(); err != nil {
		t.Skip(err)
	}
	cfg := fakeConfig(t)
	data := filepath.Join(cfg.Home, "data", "postgres")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Up(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "holds no PostgreSQL cluster") || !strings.Contains(err.Error(), "goplt infra reset") {
		t.Fatalf("error = %v", err)
	}
	if _, err := os.Stat(statePath(cfg.Home)); !os.IsNotExist(err) {
		t.Error("a failed up left a state file behind")
	}
}

func TestLockIsExclusive(t *testing.T) {
	home := testHome(t)
	unlock, err := lockHome(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockHome(home); err == nil || !strings.Contains(err.Error(), "another goplt infra command is running") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lockHome(home)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// The real stack, detached as `goplt infra up` runs it: up, status, reuse, down (no process
// left), and up again with the data kept.
func TestUpStatusDownKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	root, err := repo.RootFromWd()
	if err != nil {
		t.Fatal(err)
	}
	r := binaries.Resolver{RepoRoot: root}
	consulBin, err := r.Find(ctx, binaries.Consul())
	if err != nil {
		t.Fatal(err)
	}
	sentryBin, err := r.Find(ctx, binaries.Sentry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := fakeConfig(t)
	cfg.Consul, cfg.Sentry, cfg.Detach = consulBin, sentryBin, true
	cfg.Self = filepath.Join(cfg.Home, "goplt")
	if out, err := runGo(root, "build", "-o", cfg.Self, "./tools/goplt"); err != nil {
		t.Fatalf("build goplt: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = Down(context.Background(), cfg.Home, nil) })

	st, err := Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, st.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	ss, _, err := Status(ctx, cfg.Home)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 4 {
		t.Fatalf("status lists %d services, want 4", len(ss))
	}
	for _, s := range ss {
		if !s.Healthy {
			t.Errorf("%s unhealthy: %s", s.Name, s.Detail)
		}
	}
	again, err := Up(ctx, cfg)
	if err != nil || !again.Reused() {
		t.Fatalf("second up should reuse the healthy stack: reused=%v err=%v", again != nil && again.Reused(), err)
	}

	if err := Down(ctx, cfg.Home, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if proc.Alive(s.Pid) {
			t.Errorf("%s (pid %d) still running after down", s.Name, s.Pid)
		}
	}
	if _, _, err := Status(ctx, cfg.Home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status after down: %v, want not running", err)
	}

	start := time.Now()
	st, err = Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second up (data kept, no initdb) took %s", time.Since(start).Round(time.Millisecond))
	conn, err = pgx.Connect(ctx, st.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("data not kept across down/up: %q %v", v, err)
	}
}

func runGo(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}
