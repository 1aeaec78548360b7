package runner_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/internal/ports"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/stacktest"
)

var stack *stacktest.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(_ context.Context, s *stacktest.Stack) (func(), error) {
		stack = s
		return nil, nil
	})
}

func start(t *testing.T, timeout time.Duration, apps ...runplan.App) (*runner.Group, error) {
	t.Helper()
	if stack == nil {
		t.Skip("integration test: needs the real stack")
	}
	plan := &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind, Apps: apps}
	if err := plan.Validate(); err != nil {
		t.Fatal(err)
	}
	return runner.Start(context.Background(), runner.Options{
		Root: stack.Root, Plan: plan, Infra: stack.Endpoints(), Daprd: stack.Daprd,
		WorkDir: t.TempDir(), Output: stack.Output, ReadyTimeout: timeout, Ports: stack.Ports,
	})
}

// An app that dies while starting is named, with its exit status and last output.
func TestStartFailureSaysWhichAndWhy(t *testing.T) {
	_, err := start(t, 30*time.Second, runplan.App{
		ID: "crasher", Command: []string{"/bin/sh", "-c", "echo 'opening database'; echo 'fatal: schema locked' >&2; exit 7"},
		Config: "deploy/local/config/console.yaml",
	})
	if err == nil {
		t.Fatal("start succeeded")
	}
	for _, want := range []string{"app crasher did not become ready", "exit status 7", "fatal: schema locked"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A dependent is not started until what it depends on is ready; when that never happens the
// run fails naming the probe, and the dependent's processes never exist.
func TestDependentsWaitForReadiness(t *testing.T) {
	g, err := start(t, 3*time.Second,
		runplan.App{ID: "slow", Command: []string{"/bin/sh", "-c", "exec sleep 60"}, Config: "deploy/local/config/console.yaml"},
		runplan.App{ID: "dependent", Config: "deploy/local/config/console.yaml", DependsOn: []string{"slow"}},
	)
	if err == nil {
		g.Stop()
		t.Fatal("start succeeded although slow never became ready")
	}
	if !strings.Contains(err.Error(), "app slow: app /readyz not ready after 3s") {
		t.Errorf("error = %v", err)
	}
	if strings.Contains(err.Error(), "dependent") {
		t.Errorf("the dependent was started: %v", err)
	}
}

// Many sidecars start at once, round after round, while another process churns through the
// kernel's ephemeral ports (listeners on :0 and outbound connections, as nine sidecars talking
// to Kafka and Consul do): every start succeeds, and every port the runner hands out lies
// outside the ephemeral range, where nothing but an explicit bind can take it.
func TestManySidecarsStartWhileEphemeralPortsChurn(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs the real stack")
	}
	const sidecars, rounds = 12, 3
	eph := ports.EphemeralRange()

	stop := make(chan struct{})
	churned := make(chan int)
	go func() { churned <- churnEphemeralPorts(stop) }()

	var apps []runplan.App
	for i := range sidecars {
		apps = append(apps, runplan.App{ID: fmt.Sprintf("many%02d", i), Config: "deploy/local/config/console.yaml"})
	}
	for round := range rounds {
		g, err := start(t, time.Minute, apps...)
		if err != nil {
			close(stop)
			t.Fatalf("round %d: %v", round+1, err)
		}
		for _, a := range apps {
			ra := g.App(a.ID)
			for _, p := range []int{ra.HTTPPort, ra.GRPCPort, ra.InternalGRPCPort, ra.MetricsPort} {
				if p >= eph.Lo && p < eph.Hi {
					t.Errorf("round %d: %s got port %d inside the ephemeral range %s", round+1, a.ID, p, eph)
				}
			}
		}
		g.Stop()
	}
	close(stop)
	if n := <-churned; n < 1000 {
		t.Errorf("the churn opened only %d ephemeral sockets; the test did not stress anything", n)
	}
}

// churnEphemeralPorts keeps taking and dropping ephemeral ports until stop: listeners on :0
// and connections to one of its own listeners. It returns how many sockets it opened.
func churnEphemeralPorts(stop <-chan struct{}) int {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	opened := 0
	for {
		select {
		case <-stop:
			return opened
		default:
		}
		var held []io.Closer
		for range 50 {
			if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
				held = append(held, l)
				opened++
			}
			if c, err := net.Dial("tcp", target.Addr().String()); err == nil {
				held = append(held, c)
				opened++
			}
		}
		time.Sleep(5 * time.Millisecond)
		for _, h := range held {
			h.Close()
		}
	}
}

// BenchmarkSidecarStart times one sidecar (no app) from process start to healthy: its
// /v1.0/healthz answers and its metadata names it (components loaded, mTLS certificate from
// Sentry). Compare daprd builds with GOPLT_DAPRD:
//
//	go test -run XXX -bench SidecarStart -benchtime 5x ./internal/runner
func BenchmarkSidecarStart(b *testing.B) {
	if stack == nil {
		b.Skip("integration benchmark: needs the real stack")
	}
	plan := &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind,
		Apps: []runplan.App{{ID: "starter", Config: "deploy/local/config/console.yaml", Resources: []string{"components/local"}}}}
	work := b.TempDir()
	for b.Loop() {
		g, err := runner.Start(context.Background(), runner.Options{
			Root: stack.Root, Plan: plan, Infra: stack.Endpoints(), Daprd: stack.Daprd,
			WorkDir: work, Output: stack.Output, Ports: stack.Ports,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		g.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/start")
}

// BenchmarkConfigVsDefaults calls an echo app through two sidecars (caller sidecar -> Consul
// lookup -> callee sidecar -> app), once with the name resolution goplt generates (Consul with
// the resolver's cache, deploy/local/config/console.yaml) and once with the Consul resolver at
// Dapr's defaults (no cache: every call asks the agent), in the same run:
//
//	go test -run XXX -bench ConfigVsDefaults -benchtime 1x ./internal/runner
func BenchmarkConfigVsDefaults(b *testing.B) {
	if stack == nil {
		b.Skip("integration benchmark: needs the real stack")
	}
	work := b.TempDir()
	echo := buildEcho(b, work)
	generated, err := os.ReadFile(filepath.Join(stack.Root, "deploy", "local", "config", "console.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	defaults := strings.Replace(string(generated), "      useCache: true\n", "", 1)
	if defaults == string(generated) {
		b.Fatal("the generated caller configuration no longer sets useCache; update the benchmark")
	}
	callee := calleeConfig(b, work)
	configs := map[string]string{"generated": string(generated), "defaults": defaults}
	for name, c := range configs {
		if err := os.WriteFile(filepath.Join(work, name+".yaml"), []byte(c), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	plan := &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind, Apps: []runplan.App{
		{ID: "echo", Command: []string{echo}, Config: callee, HealthPath: "/"},
		{ID: "withcache", Config: filepath.Join(work, "generated.yaml"), DependsOn: []string{"echo"}},
		{ID: "nocache", Config: filepath.Join(work, "defaults.yaml"), DependsOn: []string{"echo"}},
	}}
	if err := plan.Validate(); err != nil {
		b.Fatal(err)
	}
	g, err := runner.Start(context.Background(), runner.Options{Root: stack.Root, Plan: plan, Infra: stack.Endpoints(),
		Daprd: stack.Daprd, WorkDir: work, Output: stack.Output, Ports: stack.Ports})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Stop()
	for b.Loop() {
		rps := map[string]float64{}
		for _, caller := range []string{"withcache", "nocache"} {
			a := g.App(caller)
			url := a.DaprHTTP() + "/v1.0/invoke/echo/method/ping"
			hit := func() error {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("dapr-api-token", a.DaprAPIToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s: status %d", caller, resp.StatusCode)
				}
				return nil
			}
			for range 200 { // warm connections and, for withcache, the resolver's cache
				if err := hit(); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			var firstErr atomic.Value
			deadline := time.Now().Add(5 * time.Second)
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						if err := hit(); err != nil {
							firstErr.CompareAndSwap(nil, err)
							return
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			if err, _ := firstErr.Load().(error); err != nil {
				b.Fatal(err)
			}
			rps[caller] = float64(n.Load()) / 5
			b.ReportMetric(rps[caller], caller+"-req/s")
		}
		b.ReportMetric(rps["withcache"]/rps["nocache"], "generated/defaults")
	}
}

// calleeConfig writes a Dapr Configuration for a callee that registers itself in Consul into
// dir and returns its path.
func calleeConfig(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "callee.yaml")
	cfg := "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: echo}\nspec:\n  nameResolution:\n    component: consul\n    configuration: {selfRegister: true, selfDeregister: true}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildEcho compiles testdata/echo into dir.
func buildEcho(tb testing.TB, dir string) string {
	tb.Helper()
	echo := filepath.Join(dir, "echo")
	if out, err := exec.Command("go", "build", "-o", echo, "./testdata/echo").CombinedOutput(); err != nil {
		tb.Fatalf("build echo: %v\n%s", err, out)
	}
	return echo
}

// A POST that takes longer than any sidecar timeout used to be is applied once: the generated
// resiliency (components/local/resiliency.yaml, the policy every module without overrides
// gets) neither cuts it short nor retries it.
func TestSlowPostIsAppliedOnce(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs the real stack")
	}
	work := t.TempDir()
	echo := buildEcho(t, work)
	raw, err := os.ReadFile(filepath.Join(stack.Root, "components", "local", "resiliency.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := yaml.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	spec := res["spec"].(map[string]any)
	apps := spec["targets"].(map[string]any)["apps"].(map[string]any)
	apps["echo"] = apps["notes"] // notes sets no resiliency of its own: the default policy
	res["scopes"] = []string{"caller"}
	out, _ := yaml.Marshal(res)
	resources := filepath.Join(work, "resources")
	_ = os.MkdirAll(resources, 0o755)
	if err := os.WriteFile(filepath.Join(resources, "resiliency.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	callee := calleeConfig(t, work)
	g, err := runner.Start(context.Background(), runner.Options{Root: stack.Root, Infra: stack.Endpoints(), Daprd: stack.Daprd,
		WorkDir: work, Output: stack.Output, Ports: stack.Ports, Plan: &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind, Apps: []runplan.App{
			{ID: "echo", Command: []string{echo}, Config: callee, HealthPath: "/"},
			{ID: "caller", Config: "deploy/local/config/console.yaml", Resources: []string{resources}, DependsOn: []string{"echo"}},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	caller := g.App("caller")
	call := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, caller.DaprHTTP()+"/v1.0/invoke/echo/method"+path, nil)
		req.Header.Set("dapr-api-token", caller.DaprAPIToken)
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := call(http.MethodPost, "/slow"); status != http.StatusOK {
		t.Fatalf("slow POST: status %d", status)
	}
	time.Sleep(time.Second) // a retry, had there been one, would have arrived by now
	if _, n := call(http.MethodGet, "/count"); n != "1" {
		t.Fatalf("the POST reached the app %s times, want once", n)
	}
}

// Replicas: each instance has its own sidecar and ports, all are registered in Consul under the
// one app id, and calls spread over them.
func TestReplicasShareTheAppID(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs the real stack")
	}
	work := t.TempDir()
	echo := buildEcho(t, work)
	callee := calleeConfig(t, work)
	g, err := runner.Start(context.Background(), runner.Options{Root: stack.Root, Infra: stack.Endpoints(), Daprd: stack.Daprd,
		WorkDir: work, Output: stack.Output, Ports: stack.Ports, Plan: &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind, Apps: []runplan.App{
			{ID: "echo3", Command: []string{echo}, Config: callee, HealthPath: "/", Replicas: 3},
			{ID: "caller", Config: "deploy/local/config/console.yaml", DependsOn: []string{"echo3"}},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	inst := g.Instances("echo3")
	if len(inst) != 3 || inst[2].Name() != "echo3#3" {
		t.Fatalf("instances: %d (%v)", len(inst), inst)
	}
	ports := map[string]bool{}
	for _, a := range inst {
		if a.Process() == nil || a.Sidecar() == nil || ports[strconv.Itoa(a.AppPort)] {
			t.Fatalf("%s: missing process or shared port", a.Name())
		}
		ports[strconv.Itoa(a.AppPort)] = true
	}
	cl, err := consul.NewClient(&consul.Config{Address: stack.Endpoints().ConsulHTTP})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := cl.Health().Service("echo3", "", true, nil)
	if err != nil || len(entries) != 3 {
		t.Fatalf("%d passing echo3 instances in Consul (%v), want 3", len(entries), err)
	}
	caller := g.App("caller")
	served := map[string]int{}
	for range 60 {
		req, _ := http.NewRequest(http.MethodGet, caller.DaprHTTP()+"/v1.0/invoke/echo3/method/whoami", nil)
		req.Header.Set("dapr-api-token", caller.DaprAPIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !ports[string(b)] {
			t.Fatalf("answer %q from no instance", b)
		}
		served[string(b)]++
	}
	if len(served) < 2 {
		t.Errorf("60 calls all went to one instance: %v", served)
	}
}

// An app run outside goplt (Except) gets only its sidecar; its dependents start anyway, and
// reach it once the user starts it with OutsideEnv, as from a debugger.
func TestAppOutsideGopltJoinsItsSidecar(t *testing.T) {
	if stack == nil {
		t.Skip("integration test: needs the real stack")
	}
	work := t.TempDir()
	echo := buildEcho(t, work)
	callee := calleeConfig(t, work)
	g, err := runner.Start(context.Background(), runner.Options{Root: stack.Root, Infra: stack.Endpoints(), Daprd: stack.Daprd,
		WorkDir: work, Output: stack.Output, Ports: stack.Ports, ReadyTimeout: time.Minute, Except: []string{"debugged"},
		Plan: &runplan.Plan{APIVersion: runplan.APIVersion, Kind: runplan.Kind, Apps: []runplan.App{
			{ID: "debugged", Command: []string{"/bin/false"}, Config: callee, HealthPath: "/", Replicas: 2},
			{ID: "caller", Config: "deploy/local/config/console.yaml", DependsOn: []string{"debugged"}},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if n := len(g.Instances("debugged")); n != 1 || g.App("debugged").Process() != nil {
		t.Fatalf("debugged: %d instances, process %v; want one, not started", n, g.App("debugged").Process())
	}
	if g.OutsideEnv("caller") != nil {
		t.Error("OutsideEnv of an app goplt runs")
	}
	env := g.OutsideEnv("debugged")
	call := func() (int, string) {
		caller := g.App("caller")
		req, _ := http.NewRequest(http.MethodGet, caller.DaprHTTP()+"/v1.0/invoke/debugged/method/whoami", nil)
		req.Header.Set("dapr-api-token", caller.DaprAPIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := call(); status == http.StatusOK {
		t.Fatalf("a call reached the app before it was started: %s", body)
	}
	// The user starts it, with what OutsideEnv gives.
	app := exec.Command(echo)
	app.Env = append(os.Environ(), env...)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Process.Kill(); _ = app.Wait() }()
	want := strconv.Itoa(g.App("debugged").AppPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := call()
		if status == http.StatusOK && body == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the caller did not reach the app started outside goplt within 30 s: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, kv := range []string{"APP_ID=debugged", "APP_PORT=" + want, "DAPR_API_TOKEN=" + g.App("debugged").DaprAPIToken} {
		if !slices.Contains(env, kv) {
			t.Errorf("OutsideEnv lacks %s", kv)
		}
	}
}
