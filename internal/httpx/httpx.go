// Package httpx holds the HTTP pieces every goplt server shares (the kernel's apps and the
// gateway): the platform's JSON error body, request ids, panic recovery and a status-recording
// response writer.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
)

// Error is the JSON body of every error: {"error": {"code", "message", "requestId"}}.
type Error struct {
	Code    string `json:"code"`    // stable, machine-readable, e.g. "not_found"
	Message string `json:"message"` // for humans
	// RequestID lets a user quote the failing request.
	RequestID string `json:"requestId,omitempty"`
	// Pointer is the JSON pointer (RFC 6901) to the part of the request body at fault.
	Pointer *string `json:"pointer,omitempty"`
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes the standard error body, with the request's id.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	WriteJSON(w, status, map[string]Error{"error": {Code: code, Message: msg, RequestID: RequestIDFrom(r.Context())}})
}

// WriteErrorAt writes the standard error body for a request body at fault at pointer.
func WriteErrorAt(w http.ResponseWriter, r *http.Request, status int, code, msg, pointer string) {
	WriteJSON(w, status, map[string]Error{"error": {Code: code, Message: msg, RequestID: RequestIDFrom(r.Context()), Pointer: &pointer}})
}

type ctxKey struct{}

// RequestIDFrom returns the request id carried by ctx ("" if none).
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// WithRequestID returns ctx carrying a request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// RequestID keeps a well-formed incoming X-Request-ID and makes one up otherwise; the id is
// put in the request's context and header (so it is forwarded) and in the response header.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !requestIDRE.MatchString(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		r.Header.Set("X-Request-ID", id)
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

// Recover turns a panic into a logged 500 with the standard body (http.ErrAbortHandler is let
// through, as net/http expects).
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "handler panicked", "panic", fmt.Sprint(v), "path", r.URL.Path)
				WriteError(w, r, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// StatusRecorder remembers the status a handler answered.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
}

// WriteHeader implements http.ResponseWriter.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush implements http.Flusher when the underlying writer does.
func (s *StatusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
