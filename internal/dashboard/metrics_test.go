package dashboard

import (
	"math"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func export(service string, ms ...*metricspb.Metric) *collectormetrics.ExportMetricsServiceRequest {
	return &collectormetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource:     &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service)}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: ms}},
	}}}
}

func duration(status string, count uint64, buckets []uint64) *metricspb.Metric {
	return &metricspb.Metric{Name: "http.server.request.duration", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
		DataPoints: []*metricspb.HistogramDataPoint{{
			Attributes:     []*commonpb.KeyValue{str("http.request.method", "GET"), str("http.route", "/things/{id}"), str("http.response.status_code", status)},
			Count:          count,
			ExplicitBounds: []float64{0.01, 0.1, 1},
			BucketCounts:   buckets,
		}},
	}}}
}

// Exports become per-app rows: counts by status class, a rate over the last two exports,
// and quantiles from the buckets of every status code of a route together.
func TestMetricsByApp(t *testing.T) {
	s := newMetricStore()
	t0 := time.Now()
	s.add(export("blog", duration("200", 80, []uint64{40, 40, 0, 0}), duration("500", 20, []uint64{0, 0, 20, 0})), t0)
	s.add(export("blog", duration("200", 100, []uint64{50, 50, 0, 0}), duration("500", 20, []uint64{0, 0, 20, 0}),
		&metricspb.Metric{Name: "goplt.outbox.backlog", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{
			DataPoints: []*metricspb.NumberDataPoint{{Value: &metricspb.NumberDataPoint_AsInt{AsInt: 3}}}}}}), t0.Add(5*time.Second))
	a := s.byApp()["blog"]
	if a == nil || len(a.Routes) != 1 {
		t.Fatalf("blog: %+v", a)
	}
	r := a.Routes[0]
	if r.Route != "GET /things/{id}" || r.Requests != 120 || r.Errors != 20 || math.Abs(r.Rate-4) > 1e-9 {
		t.Errorf("route row %+v, want 120 requests, 20 errors, 4 req/s", r)
	}
	// 120 observations: 50 up to 10 ms, 50 in (10 ms, 100 ms], 20 in (100 ms, 1 s].
	if r.P50 != "28.0 ms" || r.P99 != "946.0 ms" {
		t.Errorf("p50 %s p99 %s, want 28.0 ms and 946.0 ms", r.P50, r.P99)
	}
	if len(a.Gauges) != 1 || a.Gauges[0].Name != "goplt.outbox.backlog" || a.Gauges[0].Value != "3" {
		t.Errorf("gauges %+v", a.Gauges)
	}
}
