package kernel

import (
	"context"
	"io"
	"log/slog"
)

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request id carried by ctx ("" if none).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithRequestID returns ctx carrying a request id, which log records made with it include.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
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
