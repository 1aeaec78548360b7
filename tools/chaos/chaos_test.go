// Package chaos is the platform's fault suite: the whole platform with real sidecars, broker,
// PostgreSQL and Consul, under steady load (signed events straight into audit's topics, and
// authenticated reads through the gateway to a module with three replicas), takes one fault
// at a time; then the books are checked. `make chaos` runs every fault (GOPLT_CHAOS=full);
// `make test` runs a short subset. Every loop has a count or a deadline.
package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/failpoint"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/stacktest"
)

var (
	stack   *stacktest.Stack
	group   *runner.Group
	base    string // the gateway
	markers string // failpoint markers: a missing one arms its point
	full    = os.Getenv("GOPLT_CHAOS") == "full"
)

var allApps = []string{"identity", "auth", "authz", "audit", "notes", "blog", "billing", "gateway", "console"}

// The identity service's outbox crash points (internal/outbox).
var outboxPoints = []string{"outbox-before-publish", "outbox-after-publish"}

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		markers = filepath.Join(s.Home, "failpoints")
		if err := os.MkdirAll(markers, 0o755); err != nil {
			return nil, err
		}
		var armed []string
		for _, p := range outboxPoints {
			if err := os.WriteFile(filepath.Join(markers, p), nil, 0o644); err != nil { // disarmed
				return nil, err
			}
			armed = append(armed, p+"@"+filepath.Join(markers, p))
		}
		plan, err := s.LocalPlan(map[string]map[string]string{
			"gateway":  {"GOPLT_GATEWAY_RATE_LIMITS": "default=5000:10000,subject=5000:10000,login=100:200,register=100:200"},
			"identity": {failpoint.Env: strings.Join(armed, ",")},
		}, allApps...)
		if err != nil {
			return nil, err
		}
		for i := range plan.Apps {
			switch plan.Apps[i].ID {
			case "gateway":
				plan.Apps[i].AppPort = 0
			case "notes":
				plan.Apps[i].Replicas = 3
			}
		}
		g, err := s.Run(ctx, plan)
		if err != nil {
			return nil, err
		}
		stack, group = s, g
		base = "http://127.0.0.1:" + strconv.Itoa(g.App("gateway").AppPort)
		return g.Stop, nil
	})
}

// writeRate is the idempotent note writes per second of faults with writes.
const writeRate = 10

// fault is one entry of the suite.
type fault struct {
	name   string
	short  bool          // also in make test
	window time.Duration // steady load before, during and after the fault
	users  bool          // also register users (identity's outbox, billing, audit)
	writes bool          // also write notes with idempotency keys (the state store)
	// inject starts the fault 3 s into the window and returns when it is lifted (for kills:
	// at once; the runner restarts what died).
	inject func(t *testing.T, ctx context.Context)
	// check, after recovery, that the fault happened (given the pids from before it).
	check func(t *testing.T, before map[string]int)
}

// result is one row of the table.
type result struct {
	fault                       string
	sent, received, lost, dups  int
	users, usersLost, usersDups int
	writes                      writeBooks
	writesLost, writesDups      int
	chainOK                     bool
	reqs, firstTryErrs, errs    int
	recover                     time.Duration
}

func kill(t *testing.T, what string, p interface{ Signal(os.Signal) error }) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", what, err)
	}
}

func pause(t *testing.T, ctx context.Context, name string, d time.Duration) {
	p := stack.Infra.Process(name)
	if p == nil {
		t.Fatalf("no %s process in this stack", name)
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

func arm(t *testing.T, point string) {
	if err := os.Remove(filepath.Join(markers, point)); err != nil {
		t.Fatal(err)
	}
}

func faults() []fault {
	return []fault{
		{name: "1. audit app SIGKILLed", short: true, window: 12 * time.Second, check: restarted("audit"), inject: func(t *testing.T, _ context.Context) {
			kill(t, "audit", group.App("audit").Process())
		}},
		{name: "1. billing app SIGKILLed", window: 12 * time.Second, users: true, check: restarted("billing"), inject: func(t *testing.T, _ context.Context) {
			kill(t, "billing", group.App("billing").Process())
		}},
		{name: "2. audit sidecar SIGKILLed", short: true, window: 12 * time.Second, check: restarted("audit sidecar"), inject: func(t *testing.T, _ context.Context) {
			kill(t, "audit sidecar", group.App("audit").Sidecar())
		}},
		{name: "3. 1 of 3 notes replicas SIGKILLed", short: true, window: 12 * time.Second, check: restarted("notes#2", "notes#2 sidecar"), inject: func(t *testing.T, _ context.Context) {
			n := group.Instances("notes")[1]
			kill(t, n.Name(), n.Process())
			kill(t, n.Name()+" sidecar", n.Sidecar())
		}},
		{name: "4. PostgreSQL (databases and state store) stopped 10 s", short: true, window: 25 * time.Second, writes: true, check: restarted("postgres"), inject: func(t *testing.T, ctx context.Context) {
			if err := stack.Infra.Restart(ctx, "postgres", 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "5. broker paused (SIGSTOP) 30 s", window: 40 * time.Second, inject: func(t *testing.T, ctx context.Context) {
			pause(t, ctx, "kafka", 30*time.Second)
		}},
		{name: "5. broker restarted", window: 20 * time.Second, check: restarted("kafka"), inject: func(t *testing.T, ctx context.Context) {
			if err := stack.Infra.Restart(ctx, "kafka", 0); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "6. identity crash: outbox committed, not published", short: true, window: 12 * time.Second, users: true,
			check: fired("outbox-before-publish"), inject: func(t *testing.T, _ context.Context) { arm(t, "outbox-before-publish") }},
		{name: "6. identity crash: published, not deleted", short: true, window: 12 * time.Second, users: true,
			check: fired("outbox-after-publish"), inject: func(t *testing.T, _ context.Context) { arm(t, "outbox-after-publish") }},
	}
}

// TestFaults runs every fault in turn, prints the books, and fails on any loss or duplicate.
func TestFaults(t *testing.T) {
	if stack == nil {
		t.Skip("chaos suite: needs the real stack (run without -short)")
	}
	eventRate, reqRate := 1000, 200
	if !full {
		eventRate, reqRate = 500, 100 // the subset in make test, on a machine running the rest too
	}
	deadline := time.Now().Add(10 * time.Minute)
	db, err := pgxpool.New(context.Background(), stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reader := newReader(t)
	writers := newWriters(t, 4)
	run := time.Now().Unix()
	var results []result
	for i, f := range faults() {
		if !full && !f.short {
			continue
		}
		if time.Now().After(deadline) {
			t.Errorf("suite deadline reached before %q", f.name)
			break
		}
		t.Logf("fault: %s", f.name)
		r := runFault(t, db, reader, writers, f, fmt.Sprintf("chaos%d-f%d", run, i), eventRate, reqRate)
		results = append(results, r)
		// Client-visible errors are reported, not failed on: a read needs its database.
		if r.lost != 0 || r.dups != 0 || r.usersLost != 0 || r.usersDups != 0 || !r.chainOK || r.writesLost != 0 || r.writesDups != 0 || r.writes.unacked != 0 {
			t.Errorf("%s: %d lost, %d duplicated events; %d users lost, %d duplicated; chain ok %v; notes: %d acknowledged and lost, %d duplicated, %d never acknowledged",
				f.name, r.lost, r.dups, r.usersLost, r.usersDups, r.chainOK, r.writesLost, r.writesDups, r.writes.unacked)
		}
	}
	printTable(t, results, eventRate, reqRate)
}

func runFault(t *testing.T, db *pgxpool.Pool, rd *reader, wr *writers, f fault, prefix string, eventRate, reqRate int) result {
	ctx, cancel := context.WithTimeout(context.Background(), f.window)
	defer cancel()
	res := result{fault: f.name}
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Add(1)
	go func() { defer wg.Done(); sent.Store(int64(produceEvents(t, ctx, prefix, eventRate))) }()
	var reqs, firstErrs, errs atomic.Int64
	wg.Add(1)
	go func() { defer wg.Done(); rd.load(ctx, reqRate, &reqs, &firstErrs, &errs) }()
	var acked map[string]string
	if f.writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acked, res.writes = wr.load(ctx, writeRate, prefix+"-n", time.Now().Add(f.window+2*time.Minute))
		}()
	}
	var users []string
	var usersMu sync.Mutex
	if f.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if id, ok := createUser(fmt.Sprintf("%s-u%d@example.com", prefix, i)); ok {
					usersMu.Lock()
					users = append(users, id)
					usersMu.Unlock()
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
	}
	select {
	case <-ctx.Done():
	case <-time.After(3 * time.Second):
	}
	before := pids()
	f.inject(t, ctx)
	lifted := time.Now()
	// Recovery: from the fault's end until an event published at that moment is in the log
	// (behind whatever piled up).
	probe := prefix + "-probe"
	produceOne(t, probe)
	recovered := make(chan time.Duration, 1)
	go func() {
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if recorded(db, probe) {
				recovered <- time.Since(lifted)
				return
			}
		}
		recovered <- -1
	}()
	wg.Wait()

	// The books: every event acknowledged by the broker is in audit's log exactly once.
	res.sent = int(sent.Load())
	res.reqs, res.firstTryErrs, res.errs = int(reqs.Load()), int(firstErrs.Load()), int(errs.Load())
	settle := time.Now().Add(2 * time.Minute)
	for {
		var rows, distinct int
		if err := db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT event_id) FROM audit.log WHERE event_id LIKE $1`,
			prefix+"-%").Scan(&rows, &distinct); err == nil {
			res.received, res.dups = distinct, rows-distinct
			if distinct >= res.sent+1 || time.Now().After(settle) { // +1: the probe
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.received-- // the probe
	res.lost = res.sent - res.received
	res.recover = <-recovered
	if res.recover < 0 {
		t.Errorf("%s: the probe event never reached the log", f.name)
	}
	if f.writes {
		res.writesLost, res.writesDups = noteBooks(db, prefix+"-n", acked)
	}
	if f.users {
		res.users = len(users)
		res.usersLost, res.usersDups = userBooks(db, users, settle)
	}
	out, err := exec.Command(filepath.Join(stack.Home, "goplt"), "audit", "verify",
		"--database-url", stack.Endpoints().PostgresURL, "--secrets-file", stack.Endpoints().SecretsFile).CombinedOutput()
	res.chainOK = err == nil && strings.Contains(string(out), "audit log intact")
	if !res.chainOK {
		t.Logf("audit verify after %s: %v\n%s", f.name, err, out)
	}
	waitHealthy(t)
	if f.check != nil {
		f.check(t, before)
	}
	return res
}

// pids maps each app instance, sidecar and infrastructure service to its current process id.
func pids() map[string]int {
	out := map[string]int{}
	for _, svc := range []string{"postgres", "kafka"} {
		if p := stack.Infra.Process(svc); p != nil {
			out[svc] = p.Pid()
		}
	}
	for _, id := range allApps {
		for _, a := range group.Instances(id) {
			if p := a.Process(); p != nil {
				out[a.Name()] = p.Pid()
			}
			if s := a.Sidecar(); s != nil {
				out[a.Name()+" sidecar"] = s.Pid()
			}
		}
	}
	return out
}

// restarted checks that the fault really happened: the named processes are new ones.
func restarted(names ...string) func(t *testing.T, before map[string]int) {
	return func(t *testing.T, before map[string]int) {
		now := pids()
		for _, n := range names {
			if now[n] == before[n] {
				t.Errorf("%s was not restarted (pid %d): the fault did not happen", n, now[n])
			}
		}
	}
}

// fired checks that an outbox failpoint crashed identity: its marker is back and identity is a
// new process.
func fired(point string) func(t *testing.T, before map[string]int) {
	return func(t *testing.T, before map[string]int) {
		if _, err := os.Stat(filepath.Join(markers, point)); err != nil {
			t.Errorf("failpoint %s did not fire: %v", point, err)
		}
		restarted("identity")(t, before)
	}
}

func recorded(db *pgxpool.Pool, id string) bool {
	var n int
	_ = db.QueryRow(context.Background(), `SELECT count(*) FROM audit.log WHERE event_id = $1`, id).Scan(&n)
	return n > 0
}

// userBooks checks that every user identity confirmed reached billing (one subscription)
// and audit (one identity.user.created entry).
func userBooks(db *pgxpool.Pool, users []string, settle time.Time) (lost, dups int) {
	if len(users) == 0 {
		return 0, 0
	}
	resources := make([]string, len(users))
	for i, u := range users {
		resources[i] = "user:" + u
	}
	for {
		var subs, audited, distinct int
		_ = db.QueryRow(context.Background(), `SELECT count(*) FROM billing.subscriptions WHERE user_id::text = ANY($1)`, users).Scan(&subs)
		_ = db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT resource) FROM audit.log WHERE topic = 'identity.user.created' AND resource = ANY($1)`,
			resources).Scan(&audited, &distinct)
		lost = (len(users) - subs) + (len(users) - distinct)
		dups = audited - distinct
		if lost == 0 || time.Now().After(settle) {
			return lost, dups
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitHealthy waits until every instance answers again before the next fault.
func waitHealthy(t *testing.T) {
	deadline := time.Now().Add(90 * time.Second)
	for _, id := range allApps {
		for _, a := range group.Instances(id) {
			for {
				p, s := a.Process(), a.Sidecar()
				ok := s != nil && !s.Exited() && (p == nil || !p.Exited())
				if ok {
					if resp, err := http.Get(a.DaprHTTP() + "/v1.0/healthz"); err == nil {
						resp.Body.Close()
						ok = resp.StatusCode/100 == 2
					} else {
						ok = false
					}
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not come back", a.Name())
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}

// produceEvents writes signed auth.login.failed events prefix-0, prefix-1, ... at rate per
// second until ctx ends, and returns how many the broker acknowledged.
func produceEvents(t *testing.T, ctx context.Context, prefix string, rate int) int {
	cl, err := stack.KafkaClient(kgo.ProducerLinger(2*time.Millisecond), kgo.RecordDeliveryTimeout(90*time.Second))
	if err != nil {
		t.Error(err)
		return 0
	}
	defer cl.Close()
	var acked atomic.Int64
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		ce, err := stack.SignedEvent("auth", "auth.login.failed", fmt.Sprintf("%s-%d", prefix, i),
			map[string]any{"version": 1, "email": "chaos@example.com", "ip": "192.0.2.7", "reason": "invalid_credentials", "at": time.Now().UTC()})
		if err != nil {
			t.Error(err)
			return 0
		}
		cl.Produce(context.Background(), &kgo.Record{Topic: "auth.login.failed", Value: ce}, func(_ *kgo.Record, err error) {
			if err == nil {
				acked.Add(1)
			}
		})
	}
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = cl.Flush(fctx)
	return int(acked.Load())
}

func produceOne(t *testing.T, id string) {
	cl, err := stack.KafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ce, err := stack.SignedEvent("auth", "auth.login.failed", id, map[string]any{"version": 1, "email": "probe@example.com", "ip": "192.0.2.9", "reason": "invalid_credentials", "at": time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auth.login.failed", Value: ce}).FirstErr(); err != nil {
		t.Errorf("probe event: %v", err)
	}
}
