// Package telemetry gives an app its OpenTelemetry tracer provider and carries W3C trace
// context across what is not a Go call: HTTP requests through the sidecars, CloudEvents on
// the bus, outbox rows waiting in the database. Spans go over OTLP/HTTP to the endpoint the
// OpenTelemetry SDK's own variables name (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), which goplt run points at its dashboard or a
// collector and a Kubernetes profile at the cluster's collector; without one, tracing is off
// and costs a context lookup, while the trace context still flows so log lines keep their
// trace ids.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/goplt/goplt/internal/envvar"
)

// Propagator is W3C trace context, what Dapr's sidecars read and write.
var Propagator = propagation.TraceContext{}

// Provider is an app's tracer provider.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when tracing is off
}

// Off returns a provider that records nothing; trace context still flows through it.
func Off() *Provider { return &Provider{TracerProvider: noop.NewTracerProvider()} }

// New returns the tracer provider for service: exporting over OTLP/HTTP when getenv names an
// endpoint, sampling new traces at rate and following the caller's decision otherwise
// (parent-based, as Dapr's sidecars do), so one request is traced everywhere or nowhere.
func New(ctx context.Context, service string, rate float64, getenv func(string) string) (*Provider, error) {
	if getenv(envvar.OTLPEndpoint) == "" && getenv(envvar.OTLPTracesEndpoint) == "" {
		return Off(), nil
	}
	// The exporter reads the endpoint, headers and timeouts from the same variables itself.
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(rate))),
	)
	return &Provider{TracerProvider: tp, sdk: tp}, nil
}

// Enabled says whether spans are exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Shutdown exports what is buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
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

// FromEnv is New with the platform's sampling rate from the environment.
func FromEnv(ctx context.Context, service, rateEnv string) (*Provider, error) {
	rate, err := Rate(os.Getenv(rateEnv))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rateEnv, err)
	}
	return New(ctx, service, rate, os.Getenv)
}
