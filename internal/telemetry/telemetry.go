// Package telemetry gives an app its OpenTelemetry tracer and meter providers and carries W3C
// trace context across what is not a Go call: HTTP requests through the sidecars, CloudEvents
// on the bus, outbox rows waiting in the database. Spans and metrics go over OTLP/HTTP to the
// endpoint the OpenTelemetry SDK's own variables name (OTEL_EXPORTER_OTLP_ENDPOINT, or the
// per-signal ones), which goplt run points at its dashboard and a profile's otlpEndpoint at a
// collector; without one, tracing is off and costs a context lookup, while the trace context
// still flows so log lines keep their trace ids. Metrics are always kept for the app's
// Prometheus scrape handler.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/goplt/goplt/internal/envvar"
)

// Propagator is W3C trace context, what Dapr's sidecars read and write.
var Propagator = propagation.TraceContext{}

// Provider is an app's tracer and meter providers. Metrics are always kept (a Prometheus
// registry the app serves at /metrics) and also exported over OTLP when an endpoint is set;
// spans only then.
type Provider struct {
	trace.TracerProvider
	// Meters make the app's instruments.
	Meters metric.MeterProvider
	sdk    *sdktrace.TracerProvider // nil when tracing is off
	msdk   *sdkmetric.MeterProvider // nil when metrics are off (Off)
	lsdk   *sdklog.LoggerProvider   // nil when logs are not exported
	scrape http.Handler
}

// Off returns a provider that records nothing; trace context still flows through it.
func Off() *Provider {
	return &Provider{TracerProvider: tracenoop.NewTracerProvider(), Meters: metricnoop.NewMeterProvider(),
		scrape: http.NotFoundHandler()}
}

// New returns the providers for service. Spans go over OTLP/HTTP when getenv names an
// endpoint, new traces sampled at rate and the caller's decision followed otherwise
// (parent-based, as Dapr's sidecars do), so one request is traced everywhere or nowhere.
// Metrics go to the Prometheus scrape handler, and over OTLP with the same endpoint.
func New(ctx context.Context, service string, rate float64, getenv func(string) string) (*Provider, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	readers := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	p := &Provider{TracerProvider: tracenoop.NewTracerProvider(), scrape: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	if getenv(envvar.OTLPEndpoint) != "" || getenv(envvar.OTLPTracesEndpoint) != "" {
		// The exporters read the endpoint, headers and timeouts from the same variables.
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		p.sdk = sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp),
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(rate))),
		)
		p.TracerProvider = p.sdk
	}
	if getenv(envvar.OTLPEndpoint) != "" || getenv(envvar.OTLPMetricsEndpoint) != "" {
		mexp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp metric exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(MetricsInterval))))
	}
	p.msdk = sdkmetric.NewMeterProvider(readers...)
	p.Meters = p.msdk
	if getenv(envvar.OTLPEndpoint) != "" || getenv(envvar.OTLPLogsEndpoint) != "" {
		lexp, err := otlploghttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp log exporter: %w", err)
		}
		p.lsdk = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp)))
	}
	return p, nil
}

// LogHandler returns a slog handler that exports records over OTLP at level and above, with
// the trace context of the record's context; nil when logs are not exported.
func (p *Provider) LogHandler(scope string, level slog.Leveler) slog.Handler {
	if p.lsdk == nil {
		return nil
	}
	return leveled{otelslog.NewHandler(scope, otelslog.WithLoggerProvider(p.lsdk)), level}
}

// leveled drops records below its level.
type leveled struct {
	slog.Handler
	level slog.Leveler
}

func (h leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}
func (h leveled) WithAttrs(as []slog.Attr) slog.Handler {
	return leveled{h.Handler.WithAttrs(as), h.level}
}
func (h leveled) WithGroup(name string) slog.Handler {
	return leveled{h.Handler.WithGroup(name), h.level}
}

// MetricsInterval is how often metrics go out over OTLP.
const MetricsInterval = 5 * time.Second

// Enabled says whether spans are exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// MetricsHandler serves the app's metrics in Prometheus' text format.
func (p *Provider) MetricsHandler() http.Handler { return p.scrape }

// Shutdown exports what is buffered and stops the exporters.
func (p *Provider) Shutdown(ctx context.Context) error {
	var errs []error
	if p.sdk != nil {
		errs = append(errs, p.sdk.Shutdown(ctx))
	}
	if p.msdk != nil {
		errs = append(errs, p.msdk.Shutdown(ctx))
	}
	if p.lsdk != nil {
		errs = append(errs, p.lsdk.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Rate parses a sampling rate ("" is 0: sample no new trace).
func Rate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 || r > 1 {
		return 0, fmt.Errorf("sampling rate %q: want a number from 0 to 1", s)
	}
	return r, nil
}

// WithTraceParent returns ctx continuing the trace of a W3C traceparent (a CloudEvent's, an
// outbox row's); ctx unchanged when it is empty or malformed.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceParent returns the W3C traceparent of ctx's current span ("" if none).
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c["traceparent"]
}

// Inject writes ctx's trace context into h.
func Inject(ctx context.Context, h http.Header) { Propagator.Inject(ctx, propagation.HeaderCarrier(h)) }

// Extract returns ctx continuing the trace context of h.
func Extract(ctx context.Context, h http.Header) context.Context {
	return Propagator.Extract(ctx, propagation.HeaderCarrier(h))
}
