package kernel

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/goplt/goplt/internal/httpx"
	"github.com/goplt/goplt/internal/invoke"
)

// RequestID returns the request id carried by ctx ("" if none).
func RequestID(ctx context.Context) string { return httpx.RequestIDFrom(ctx) }

// WithRequestID returns ctx carrying a request id, which log records made with it include.
func WithRequestID(ctx context.Context, id string) context.Context {
	return httpx.WithRequestID(ctx, id)
}

func newLogger(out io.Writer, cfg Config) *slog.Logger {
	h := slog.NewJSONHandler(out, &slog.HandlerOptions{Level: cfg.LogLevel})
	return slog.New(requestIDHandler{h}).With("app", cfg.AppID)
}

// requestIDHandler adds the context's request id to every record, and the trace it belongs
// to: trace_id and span_id from the W3C traceparent the sidecar passed with the request or the
// event (span_id is the sidecar's span that called the app), so a log line leads to its trace
// in the dashboard and a handler's lines to the publisher's trace across the bus.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if trace, span, ok := parseTraceParent(invoke.TraceParent(ctx)); ok {
		r.AddAttrs(slog.String("trace_id", trace), slog.String("span_id", span))
	}
	return h.Handler.Handle(ctx, r)
}

// parseTraceParent returns the trace and parent span ids of a W3C traceparent
// ("00-<32 hex>-<16 hex>-<2 hex>"), ok false when it is not one or its ids are all zeros.
func parseTraceParent(tp string) (trace, span string, ok bool) {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] == "ff" {
		return "", "", false
	}
	trace, span = tp[3:35], tp[36:52]
	if !isHex(tp[:2]) || !isHex(trace) || !isHex(span) || !isHex(tp[53:55]) ||
		strings.Trim(trace, "0") == "" || strings.Trim(span, "0") == "" {
		return "", "", false
	}
	return trace, span, true
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
