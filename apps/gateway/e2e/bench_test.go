package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadClient keeps enough idle connections for every worker.
var loadClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}

type target struct {
	name string
	req  func() *http.Request
}

func hit(t target) (time.Duration, error) {
	start := time.Now()
	resp, err := loadClient.Do(t.req())
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: status %d", t.name, resp.StatusCode)
	}
	return time.Since(start), nil
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*p/100)]
}

// saturate runs workers closed loops for d: throughput and latencies at saturation.
func saturate(t target, workers int, d time.Duration) (float64, time.Duration, time.Duration, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr atomic.Value
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stop) {
				l, err := hit(t)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				mine = append(mine, l)
				n.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return float64(n.Load()) / d.Seconds(), percentile(lat, 50), percentile(lat, 99), err
}

// fixedRate sends rate requests per second for d (open loop): latencies at that load.
func fixedRate(t target, rate int, d time.Duration) (time.Duration, time.Duration, error) {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := hit(t)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			mu.Lock()
			lat = append(lat, l)
			mu.Unlock()
		}()
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return percentile(lat, 50), percentile(lat, 99), err
}

// BenchmarkPaths measures one authenticated GET (GET /blog/me/posts: token verified, a
// query on the blog schema) three ways in one run:
//   - gateway: client -> gateway (verify, authz decision from its cache) -> gateway's sidecar
//     -> blog's sidecar -> blog;
//   - sidecars: client -> a bare sidecar (console) -> blog's sidecar -> blog (Dapr service
//     invocation without the gateway);
//   - direct: client -> blog's HTTP port.
//
// At saturation (32 closed-loop workers, 10 s each) and at fixed rates (200 and 500 req/s, 5 s
// each). Run: go test -run XXX -bench Paths -benchtime 1x ./apps/gateway/e2e
func BenchmarkPaths(b *testing.B) {
	needStack(b)
	u := register(b)
	console, blog := group.App("console"), group.App("blog")
	targets := []target{
		{"gateway", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, base+"/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			return r
		}},
		{"sidecars", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, console.DaprHTTP()+"/v1.0/invoke/blog/method/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			r.Header.Set("dapr-api-token", console.DaprAPIToken)
			return r
		}},
		{"direct", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(blog.AppPort)+"/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			r.Header.Set("dapr-api-token", blog.AppAPIToken)
			return r
		}},
	}
	for b.Loop() {
		rps := map[string]float64{}
		p50 := map[string]time.Duration{}
		for _, t := range targets {
			if _, _, _, err := saturate(t, 8, time.Second); err != nil { // warm caches and connections
				b.Fatal(err)
			}
			r, l50, l99, err := saturate(t, 32, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			rps[t.name] = r
			b.ReportMetric(r, t.name+"-req/s")
			b.Logf("%-8s saturation: %7.0f req/s  p50 %7s  p99 %7s", t.name, r, l50.Round(time.Microsecond), l99.Round(time.Microsecond))
			for _, rate := range []int{200, 500} {
				f50, f99, err := fixedRate(t, rate, 5*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if rate == 200 {
					p50[t.name] = f50
				}
				b.Logf("%-8s at %d req/s: p50 %7s  p99 %7s", t.name, rate, f50.Round(time.Microsecond), f99.Round(time.Microsecond))
			}
		}
		b.ReportMetric(rps["gateway"]/rps["sidecars"], "gateway/sidecars-throughput")
		b.ReportMetric(float64(p50["gateway"]-p50["sidecars"])/1e6, "gateway-added-p50-ms@200")
		b.Logf("gateway/sidecars throughput %.2fx; sidecars/direct %.2fx; gateway adds %s p50 at 200 req/s",
			rps["gateway"]/rps["sidecars"], rps["sidecars"]/rps["direct"], (p50["gateway"] - p50["sidecars"]).Round(time.Microsecond))
	}
}
