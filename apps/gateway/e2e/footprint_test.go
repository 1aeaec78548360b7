package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/proc"
)

// BenchmarkFootprint measures the memory of the whole platform as `make run` has it (all apps,
// their sidecars, PostgreSQL, the broker, Consul, Sentry): each process idle, then the
// gateway's and blog's sidecars under gateway load (200 req/s, then saturation), and the
// start-up time of one more sidecar. Run it once with goplt's daprd and once with
// GOPLT_DAPRD=<stock daprd> for the comparison (make bench-footprint does both):
//
//	go test -run XXX -bench Footprint -benchtime 1x ./apps/gateway/e2e
func BenchmarkFootprint(b *testing.B) {
	needStack(b)
	daprd := filepath.Base(stack.Daprd)
	for b.Loop() {
		time.Sleep(10 * time.Second) // idle: past start-up, caches warm, Consul checks settled
		var apps, sidecars, infra proc.Mem
		var maxSidecar, maxApp, private int64
		lines := []string{}
		for _, id := range allApps {
			a := group.App(id)
			if p := a.Process(); p != nil {
				m := memory(b, p)
				apps = apps.Add(m)
				maxApp = max(maxApp, m.RSS)
				lines = append(lines, fmt.Sprintf("app %-9s RSS %s", id, proc.MiB(m.RSS)))
				b.ReportMetric(mib(m.RSS), "MiB-app-"+id)
			}
			m := memory(b, a.Sidecar())
			sidecars = sidecars.Add(m)
			maxSidecar = max(maxSidecar, m.RSS)
			private += m.Private
			lines = append(lines, fmt.Sprintf("sidecar %-9s RSS %s (private %s)", id, proc.MiB(m.RSS), proc.MiB(m.Private)))
		}
		for _, p := range stack.Infra.Processes() {
			m := memory(b, p)
			infra = infra.Add(m)
			lines = append(lines, fmt.Sprintf("infra %-22s RSS %s PSS %s", filepath.Base(p.Name()), proc.MiB(m.RSS), proc.MiB(m.PSS)))
		}
		sort.Strings(lines)
		for _, l := range lines {
			b.Log(l)
		}
		n := float64(len(allApps))
		total := apps.Add(sidecars).Add(infra)
		b.ReportMetric(mib(sidecars.RSS)/n, "MiB-sidecar-idle-avg")
		b.ReportMetric(mib(maxSidecar), "MiB-sidecar-idle-max")
		b.ReportMetric(mib(private)/n, "MiB-sidecar-idle-private-avg")
		b.ReportMetric(mib(apps.RSS), "MiB-apps")
		b.ReportMetric(mib(maxApp), "MiB-app-max")
		if st, err := os.Stat(stack.Daprd); err == nil {
			b.ReportMetric(mib(st.Size()), "MiB-daprd-binary")
		}
		b.ReportMetric(mib(infra.PSS), "MiB-infra-pss")
		b.ReportMetric(mib(total.RSS), "MiB-platform-rss")
		b.ReportMetric(mib(total.PSS), "MiB-platform-pss")
		b.Logf("%s daprd: %d sidecars %s RSS (avg %s), apps %s, infra %s RSS / %s PSS; platform %s RSS, %s PSS",
			daprd, len(allApps), proc.MiB(sidecars.RSS), proc.MiB(sidecars.RSS/int64(n)), proc.MiB(apps.RSS),
			proc.MiB(infra.RSS), proc.MiB(infra.PSS), proc.MiB(total.RSS), proc.MiB(total.PSS))

		// Under load: the largest RSS of the two sidecars on the request path.
		u := register(b)
		t := target{name: "gateway", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, base+"/blog/me/posts", nil)
			r.Header.Set("Authorization", "Bearer "+u.tok.AccessToken)
			return r
		}}
		for _, load := range []struct {
			name string
			run  func() error
		}{
			{"200rps", func() error { _, err := fixedRate(t, 200, 10*time.Second); return err }},
			{"saturation", func() error { _, err := saturate(t, 32, 10*time.Second); return err }},
		} {
			peak := peakRSS(b, load.run, group.App("gateway").Sidecar(), group.App("blog").Sidecar())
			b.ReportMetric(mib(peak), "MiB-sidecar-peak-"+load.name)
			b.Logf("%s daprd: sidecar peak RSS under gateway load %s: %s", daprd, load.name, proc.MiB(peak))
		}
	}
}

func memory(b *testing.B, p *proc.Process) proc.Mem {
	b.Helper()
	m, err := p.Memory()
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// peakRSS runs load while sampling the processes' RSS every 100 ms; it returns the largest.
func peakRSS(b *testing.B, load func() error, ps ...*proc.Process) int64 {
	b.Helper()
	var peak int64
	var mu sync.Mutex
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range ps {
				if m, err := p.Memory(); err == nil {
					mu.Lock()
					peak = max(peak, m.RSS)
					mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	err := load()
	close(done)
	<-sampled
	if err != nil && !strings.Contains(err.Error(), "status 429") {
		b.Fatal(err)
	}
	return peak
}
