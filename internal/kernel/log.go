package kernel

import (
	"context"
	"io"
	"log/slog"

	"github.com/goplt/goplt/internal/httpx"
	"go.opentelemetry.io/otel/trace"

	"github.com/goplt/goplt/internal/telemetry"
)

// RequestID returns the request id carried by ctx ("" if none).
func RequestID(ctx context.Context) string { return httpx.RequestIDFrom(ctx) }

// WithRequestID returns ctx carrying a request id, which log records made with it include.
func WithRequestID(ctx context.Context, id string) context.Context {
	return httpx.WithRequestID(ctx, id)
}

// NewLogger is the logger every app on the kernel gets, for an app that is not (the gateway):
// JSON lines to out at level, each with the app id, the request id and the trace and span ids
// of its context, and the same records over OTLP when tel exports.
func NewLogger(out io.Writer, appID string, level slog.Level, tel *telemetry.Provider) *slog.Logger {
	cfg := Config{AppID: appID, LogLevel: level}
	if h := tel.LogHandler("goplt/"+appID, level); h != nil {
		return newLogger(out, cfg, h)
	}
	return newLogger(out, cfg)
}

// newLogger writes JSON lines to out, and to also (an OTLP exporter) when given.
func newLogger(out io.Writer, cfg Config, also ...slog.Handler) *slog.Logger {
	var h slog.Handler = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: cfg.LogLevel})
	if len(also) > 0 {
		h = slog.NewMultiHandler(append([]slog.Handler{h}, also...)...)
	}
	return slog.New(requestIDHandler{h}).With("app", cfg.AppID)
}

// requestIDHandler adds the context's request id to every record, and the trace it belongs
// to: trace_id and span_id of the context's span (the app's own when tracing is on, else the
// sidecar's span that called the app, from the request's or the event's traceparent), so a
// log line leads to its trace in the dashboard and a handler's lines to the publisher's trace
// across the bus.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
