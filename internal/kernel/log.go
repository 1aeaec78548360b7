package kernel

import (
	"context"
	"io"
	"log/slog"

	"github.com/goplt/goplt/internal/httpx"
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

// requestIDHandler adds the context's request id to every record.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
