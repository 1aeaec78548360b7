package dashboard

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// series is one metric stream of one app: its latest cumulative value (or histogram), and
// the one before, for a rate.
type series struct {
	Service, Name string
	Attrs         map[string]string
	Value         float64 // a sum's or gauge's value; a histogram's count
	Sum           float64 // a histogram's sum
	Bounds        []float64
	Buckets       []uint64
	At, PrevAt    time.Time
	Prev          float64
}

// metricStore keeps the latest point of every stream the apps export over OTLP.
type metricStore struct {
	mu     sync.Mutex
	series map[string]*series
}

func newMetricStore() *metricStore { return &metricStore{series: map[string]*series{}} }

// receiveOTLP is an OTLP/HTTP metrics receiver (POST /v1/metrics, protobuf or JSON).
func (s *metricStore) receiveOTLP(w http.ResponseWriter, r *http.Request) {
	var req collectormetrics.ExportMetricsServiceRequest
	if decodeOTLP(w, r, &req, "metrics") {
		s.add(&req, time.Now())
		answerOTLP(w, r, &collectormetrics.ExportMetricsServiceResponse{})
	}
}

func (s *metricStore) add(req *collectormetrics.ExportMetricsServiceRequest, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		service := attr(rm.GetResource().GetAttributes(), "service.name")
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				switch d := m.GetData().(type) {
				case *metricspb.Metric_Sum:
					for _, p := range d.Sum.GetDataPoints() {
						s.put(service, m.GetName(), p.GetAttributes(), now, func(x *series) { x.Value = number(p) })
					}
				case *metricspb.Metric_Gauge:
					for _, p := range d.Gauge.GetDataPoints() {
						s.put(service, m.GetName(), p.GetAttributes(), now, func(x *series) { x.Value = number(p) })
					}
				case *metricspb.Metric_Histogram:
					for _, p := range d.Histogram.GetDataPoints() {
						s.put(service, m.GetName(), p.GetAttributes(), now, func(x *series) {
							x.Value, x.Sum, x.Bounds, x.Buckets = float64(p.GetCount()), p.GetSum(), p.GetExplicitBounds(), p.GetBucketCounts()
						})
					}
				}
			}
		}
	}
}

func number(p *metricspb.NumberDataPoint) float64 {
	if v, ok := p.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
		return float64(v.AsInt)
	}
	return p.GetAsDouble()
}

func (s *metricStore) put(service, name string, kvs []*commonpb.KeyValue, now time.Time, set func(*series)) {
	attrs := map[string]string{}
	keys := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		attrs[kv.GetKey()] = value(kv.GetValue())
		keys = append(keys, kv.GetKey()+"="+attrs[kv.GetKey()])
	}
	slices.Sort(keys)
	id := service + "\x00" + name + "\x00" + strings.Join(keys, ",")
	x := s.series[id]
	if x == nil {
		x = &series{Service: service, Name: name, Attrs: attrs}
		s.series[id] = x
	} else {
		x.Prev, x.PrevAt = x.Value, x.At
	}
	set(x)
	x.At = now
}

// rate is the stream's increase per second between its last two exports.
func (x *series) rate() float64 {
	if x.PrevAt.IsZero() || !x.At.After(x.PrevAt) || x.Value < x.Prev {
		return 0
	}
	return (x.Value - x.Prev) / x.At.Sub(x.PrevAt).Seconds()
}

// quantile estimates a histogram's q-quantile from its buckets (linear within a bucket, as
// Prometheus' histogram_quantile does).
func (x *series) quantile(q float64) float64 {
	if x.Value == 0 || len(x.Buckets) == 0 {
		return math.NaN()
	}
	rank := q * x.Value
	var seen float64
	for i, c := range x.Buckets {
		if seen+float64(c) >= rank {
			lo := 0.0
			if i > 0 {
				lo = x.Bounds[i-1]
			}
			if i >= len(x.Bounds) { // the open last bucket: its lower bound is all we know
				return lo
			}
			if c == 0 {
				return x.Bounds[i]
			}
			return lo + (x.Bounds[i]-lo)*(rank-seen)/float64(c)
		}
		seen += float64(c)
	}
	return x.Bounds[len(x.Bounds)-1]
}

// routeMetrics is one route of one app on the metrics page.
type routeMetrics struct {
	Route            string
	Requests, Errors float64 // since the app started; Errors: status 500 and above
	Rate             float64 // requests per second lately
	P50, P99         string
	ClientErrors     float64 // status 400-499
}

// appMetrics is what the metrics page shows of one app.
type appMetrics struct {
	App     string
	Routes  []routeMetrics
	Events  []eventRow
	Gauges  []gaugeRow
	Sidecar []gaugeRow // the sidecars' own Dapr metrics, summed over their labels
}

type eventRow struct {
	Topic, Status string
	Count         float64
	LagP50        string
}

type gaugeRow struct {
	Name  string
	Value string
}

func ms(seconds float64) string {
	if math.IsNaN(seconds) {
		return "—"
	}
	return strconv.FormatFloat(seconds*1000, 'f', 1, 64) + " ms"
}

// byApp groups the streams into the page's tables.
func (s *metricStore) byApp() map[string]*appMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	apps := map[string]*appMetrics{}
	get := func(name string) *appMetrics {
		if apps[name] == nil {
			apps[name] = &appMetrics{App: name}
		}
		return apps[name]
	}
	routes := map[string]map[string]*routeMetrics{}
	hists := map[string]map[string][]*series{}
	lags := map[string]*series{}
	for _, x := range s.series {
		a := get(x.Service)
		switch x.Name {
		case "http.server.request.duration":
			route := x.Attrs["http.request.method"] + " " + x.Attrs["http.route"]
			if routes[x.Service] == nil {
				routes[x.Service], hists[x.Service] = map[string]*routeMetrics{}, map[string][]*series{}
			}
			r := routes[x.Service][route]
			if r == nil {
				r = &routeMetrics{Route: route}
				routes[x.Service][route] = r
			}
			r.Requests += x.Value
			r.Rate += x.rate()
			if code, err := strconv.Atoi(x.Attrs["http.response.status_code"]); err == nil {
				switch {
				case code >= 500:
					r.Errors += x.Value
				case code >= 400:
					r.ClientErrors += x.Value
				}
			}
			hists[x.Service][route] = append(hists[x.Service][route], x)
		case "goplt.events.handled":
			a.Events = append(a.Events, eventRow{Topic: x.Attrs["messaging.destination.name"], Status: x.Attrs["status"], Count: x.Value})
		case "goplt.events.lag":
			lags[x.Service+"\x00"+x.Attrs["messaging.destination.name"]] = x
		default:
			if len(x.Buckets) == 0 && strings.HasPrefix(x.Name, "goplt.") {
				a.Gauges = append(a.Gauges, gaugeRow{Name: x.Name, Value: strconv.FormatFloat(x.Value, 'f', -1, 64)})
			}
		}
	}
	for app, rs := range routes {
		for route, r := range rs {
			merged := merge(hists[app][route])
			r.P50, r.P99 = ms(merged.quantile(0.5)), ms(merged.quantile(0.99))
			apps[app].Routes = append(apps[app].Routes, *r)
		}
		sort.Slice(apps[app].Routes, func(i, j int) bool { return apps[app].Routes[i].Route < apps[app].Routes[j].Route })
	}
	for _, a := range apps {
		for i, e := range a.Events {
			if l := lags[a.App+"\x00"+e.Topic]; l != nil {
				a.Events[i].LagP50 = ms(l.quantile(0.5))
			}
		}
		sort.Slice(a.Events, func(i, j int) bool {
			return a.Events[i].Topic+a.Events[i].Status < a.Events[j].Topic+a.Events[j].Status
		})
		sort.Slice(a.Gauges, func(i, j int) bool { return a.Gauges[i].Name < a.Gauges[j].Name })
	}
	return apps
}

// merge adds histograms of one route (one per status code) with the same buckets.
func merge(xs []*series) *series {
	out := &series{}
	for _, x := range xs {
		if out.Buckets == nil {
			out.Bounds, out.Buckets = x.Bounds, make([]uint64, len(x.Buckets))
		}
		if len(x.Buckets) != len(out.Buckets) {
			continue
		}
		out.Value += x.Value
		for i, c := range x.Buckets {
			out.Buckets[i] += c
		}
	}
	return out
}

// sidecarFamilies are the Dapr metrics the page sums per sidecar: its own view of the calls
// and events that pass through it.
var sidecarFamilies = []string{
	"dapr_http_server_request_count", "dapr_grpc_io_server_completed_rpcs",
	"dapr_component_pubsub_egress_count", "dapr_component_pubsub_ingress_count",
	"dapr_resiliency_count",
}

// scrapeSidecar reads a sidecar's Prometheus endpoint and sums sidecarFamilies.
func scrapeSidecar(ctx context.Context, port int) ([]gaugeRow, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	var out []gaugeRow
	for _, name := range sidecarFamilies {
		f := families[name]
		if f == nil {
			continue
		}
		var sum float64
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		out = append(out, gaugeRow{Name: name, Value: strconv.FormatFloat(sum, 'f', -1, 64)})
	}
	return out, nil
}
