package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/stacktest"
)

// loadClient keeps enough idle connections for every worker.
var loadClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}

type target struct {
	name string
	req  func() *http.Request
	// saturationOnly leaves the target out of the fixed-rate runs.
	saturationOnly bool
}

func hit(t target) (time.Duration, error) {
	start := time.Now()
	resp, err := loadClient.Do(t.req())
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("%s: status %d", t.name, resp.StatusCode)
	}
	return time.Since(start), nil
}

// run is what one load run measured; runs of the same target add up.
type run struct {
	n   int
	d   time.Duration
	lat []time.Duration
}

func (r *run) add(o run) { r.n += o.n; r.d += o.d; r.lat = append(r.lat, o.lat...) }

func (r run) rps() float64 { return float64(r.n) / r.d.Seconds() }

func (r run) percentile(p int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, len(r.lat)*p/100)]
}

// saturate runs workers closed loops for d: throughput and latencies at saturation.
func saturate(t target, workers int, d time.Duration) (run, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(stop) {
				l, err := hit(t)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				mine = append(mine, l)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return run{n: len(lat), d: d, lat: lat}, err
}

// fixedRate sends rate requests per second for d (open loop): latencies at that load.
func fixedRate(t target, rate int, d time.Duration) (run, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr atomic.Value
	var wg sync.WaitGroup
	total := int(d.Seconds() * float64(rate))
	start := time.Now()
	for i := range total {
		if w := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() {
			l, err := hit(t)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			mu.Lock()
			lat = append(lat, l)
			mu.Unlock()
		})
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return run{n: len(lat), d: d, lat: lat}, err
}

// profile takes a CPU profile of every app with a profiler (GOPLT_BENCH_PROFILES) over d,
// in the background, into <dir>/<app>-<target>.pprof; the function returned waits for them.
func profile(b *testing.B, target string, d time.Duration) func() {
	dir := os.Getenv("GOPLT_BENCH_PROFILES")
	var wg sync.WaitGroup
	for app, addr := range profilers {
		wg.Go(func() {
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
			if err != nil {
				b.Errorf("profile %s: %v", app, err)
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d: %s", resp.StatusCode, data)
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, app+"-"+target+".pprof"), data, 0o644)
			}
			if err != nil {
				b.Errorf("profile %s: %v", app, err)
			}
		})
	}
	return wg.Wait
}

// BenchmarkPaths measures one authenticated GET (GET /blog/me/posts: token verified, a
// query on the blog schema) three ways in one run:
//   - gateway: client -> gateway (verify, authz decision from its cache) -> gateway's sidecar
//     -> blog's sidecar -> blog;
//   - sidecars: client -> a bare sidecar (console) -> blog's sidecar -> blog (Dapr service
//     invocation without the gateway);
//   - direct: client -> blog's HTTP port;
//   - traced (saturation only): the bare path with every request marked sampled.
//
// At saturation (32 closed-loop workers) and at fixed rates (200 and 500 req/s). The targets
// take turns, three rounds of each load, so that drift of this shared machine weighs on all
// of them alike. Each saturation run also reads every process's CPU time: where a request's
// CPU goes. Run: go test -run XXX -bench Paths -benchtime 1x ./apps/gateway/e2e
func BenchmarkPaths(b *testing.B) {
	needStack(b)
	u := register(b)
	console, blog := group.App("console"), group.App("blog")
	targets := []target{
		{name: "gateway", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, base+"/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			return r
		}},
		{name: "sidecars", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, console.DaprHTTP()+"/v1.0/invoke/blog/method/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			r.Header.Set("dapr-api-token", console.DaprAPIToken)
			return r
		}},
		{name: "direct", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(blog.AppPort)+"/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			r.Header.Set("dapr-api-token", blog.AppAPIToken)
			return r
		}},
		// The bare path with every request marked sampled by its caller, as the gateway used to
		// mark them: what that costs the sidecars, which follow the caller's decision.
		{name: "traced", saturationOnly: true, req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, console.DaprHTTP()+"/v1.0/invoke/blog/method/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			r.Header.Set("dapr-api-token", console.DaprAPIToken)
			var id [24]byte
			_, _ = rand.Read(id[:])
			r.Header.Set("Traceparent", "00-"+hex.EncodeToString(id[:16])+"-"+hex.EncodeToString(id[16:])+"-01")
			return r
		}},
	}
	const rounds = 3
	meter := stack.CPUMeter(group, "gateway", "console", "blog")
	read := func() stacktest.CPUReading {
		r, err := meter.Read()
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	for b.Loop() {
		for _, t := range targets {
			if _, err := saturate(t, 8, time.Second); err != nil { // warm caches and connections
				b.Fatal(err)
			}
		}
		sat := map[string]*run{}
		cpu := map[string]stacktest.CPUReading{}
		at := map[int]map[string]*run{200: {}, 500: {}}
		for round := range rounds {
			for _, t := range targets {
				before := read()
				profiled := func() {}
				if round == 0 {
					profiled = profile(b, t.name, 3*time.Second)
				}
				r, err := saturate(t, 32, 4*time.Second)
				profiled()
				if err != nil {
					b.Fatal(err)
				}
				cpu[t.name] = read().Minus(before).Plus(cpu[t.name])
				if sat[t.name] == nil {
					sat[t.name] = &run{}
				}
				sat[t.name].add(r)
			}
			for rate, byTarget := range at {
				for _, t := range targets {
					if t.saturationOnly {
						continue
					}
					r, err := fixedRate(t, rate, 2*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					if byTarget[t.name] == nil {
						byTarget[t.name] = &run{}
					}
					byTarget[t.name].add(r)
				}
			}
		}
		for _, t := range targets {
			r, spent, n := sat[t.name], cpu[t.name], float64(sat[t.name].n)
			b.ReportMetric(r.rps(), t.name+"-req/s")
			b.Logf("%-8s saturation: %7.0f req/s  p50 %7s  p99 %7s", t.name, r.rps(), r.percentile(50).Round(time.Microsecond), r.percentile(99).Round(time.Microsecond))
			b.Logf("%-8s CPU per request (µs): %s", t.name, spent.Table(n))
			b.ReportMetric(spent.Per("machine", n), t.name+"-machine-cpu-µs/req")
			for _, rate := range []int{200, 500} {
				f := at[rate][t.name]
				if f == nil {
					continue
				}
				b.Logf("%-8s at %d req/s: p50 %7s  p99 %7s", t.name, rate, f.percentile(50).Round(time.Microsecond), f.percentile(99).Round(time.Microsecond))
			}
		}
		gw, sc := cpu["gateway"], float64(sat["gateway"].n)
		b.ReportMetric(gw.Per("gateway", sc), "gateway-app-cpu-µs/req")
		b.ReportMetric(gw.Per("gateway.dapr", sc), "gateway-sidecar-cpu-µs/req")
		b.ReportMetric(cpu["sidecars"].Per("console.dapr", float64(sat["sidecars"].n)), "console-sidecar-cpu-µs/req")
		b.ReportMetric(cpu["traced"].Per("console.dapr", float64(sat["traced"].n)), "traced-console-sidecar-cpu-µs/req")
		b.ReportMetric(cpu["traced"].Per("blog.dapr", float64(sat["traced"].n)), "traced-blog-sidecar-cpu-µs/req")
		b.ReportMetric(cpu["sidecars"].Per("blog.dapr", float64(sat["sidecars"].n)), "blog-sidecar-cpu-µs/req")
		ratio := sat["gateway"].rps() / sat["sidecars"].rps()
		added := at[200]["gateway"].percentile(50) - at[200]["sidecars"].percentile(50)
		b.ReportMetric(ratio, "gateway/sidecars-throughput")
		b.ReportMetric(float64(added)/1e6, "gateway-added-p50-ms@200")
		b.Logf("gateway/sidecars throughput %.2fx; sidecars/direct %.2fx; gateway adds %s p50 at 200 req/s",
			ratio, sat["sidecars"].rps()/sat["direct"].rps(), added.Round(time.Microsecond))
	}
}

// The CPU meter the benchmarks use reads the real stack: requests through the gateway show
// up as CPU of the gateway, its sidecar and the machine.
func TestCPUMeterReadsTheStack(t *testing.T) {
	needStack(t)
	u := register(t)
	meter := stack.CPUMeter(group, "gateway", "blog")
	before, err := meter.Read()
	if err != nil {
		t.Fatal(err)
	}
	get := target{name: "gateway", req: func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, base+"/blog/me/posts", nil)
		r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
		return r
	}}
	for range 300 {
		if _, err := hit(get); err != nil {
			t.Fatal(err)
		}
	}
	after, err := meter.Read()
	if err != nil {
		t.Fatal(err)
	}
	spent := after.Minus(before)
	for _, name := range []string{"machine", "gateway", "gateway.dapr", "blog.dapr", "load"} {
		if spent[name] <= 0 {
			t.Errorf("%s used no CPU for 300 requests: %s", name, spent.Table(300))
		}
	}
	for _, name := range []string{"postgres", "kafka", "consul", "sentry"} {
		if _, ok := after[name]; !ok {
			t.Errorf("no reading for %s: %v", name, after)
		}
	}
}

// benchTracingEnv, when set (to a sampling rate), makes the benchmarks' stack export every
// app's and sidecar's spans to a real OpenTelemetry Collector, sampling new traces at that
// rate; unset, tracing is off.
const benchTracingEnv = "GOPLT_BENCH_TRACING"

// BenchmarkTracing is the gateway path of BenchmarkPaths at saturation (32 workers, three
// rounds of 4 s), with the stack as benchTracingEnv sets it up: `make bench` runs it with
// tracing off, at the local profile's default rate (0: the exporter and SDK in place, no
// trace sampled) and at 10 %, each in a stack of its own, and compares throughput and CPU.
func BenchmarkTracing(b *testing.B) {
	needStack(b)
	u := register(b)
	t := target{name: "gateway", req: func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, base+"/blog/me/posts", nil)
		r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
		return r
	}}
	meter := stack.CPUMeter(group, "gateway", "blog")
	for b.Loop() {
		if _, err := saturate(t, 8, time.Second); err != nil { // warm caches and connections
			b.Fatal(err)
		}
		sat := &run{}
		before, err := meter.Read()
		if err != nil {
			b.Fatal(err)
		}
		for range 3 {
			r, err := saturate(t, 32, 4*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			sat.add(r)
		}
		after, err := meter.Read()
		if err != nil {
			b.Fatal(err)
		}
		spent, n := after.Minus(before), float64(sat.n)
		b.ReportMetric(sat.rps(), "gateway-req/s")
		b.ReportMetric(spent.Per("machine", n), "machine-cpu-µs/req")
		b.Logf("tracing %q: %.0f req/s, p50 %s, p99 %s; CPU per request (µs): %s", os.Getenv(benchTracingEnv), sat.rps(),
			sat.percentile(50).Round(time.Microsecond), sat.percentile(99).Round(time.Microsecond), spent.Table(n))
	}
}
