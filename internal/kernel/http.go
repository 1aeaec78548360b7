package kernel

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Error is the JSON body of every error the kernel (and well-behaved modules) return.
type Error struct {
	Code    string `json:"code"`    // stable, machine-readable, e.g. "not_found"
	Message string `json:"message"` // for humans
	// RequestID lets a user quote the failing request.
	RequestID string `json:"requestId,omitempty"`
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes the standard error body.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	WriteJSON(w, status, map[string]Error{"error": {Code: code, Message: msg, RequestID: RequestID(r.Context())}})
}

// Fail logs err with what failed and answers 500 with the standard body (no internals leak to
// the caller; the request id ties the answer to the log line).
func (k *Kernel) Fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	k.log.ErrorContext(r.Context(), what+" failed", "err", err)
	WriteError(w, r, http.StatusInternalServerError, "internal", what+" failed")
}

// DecodeJSON reads a JSON request body of at most maxBytes into v, rejecting unknown fields
// and trailing data. On failure it has already written a 400/413 error and returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			WriteError(w, r, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", maxBytes))
		} else {
			WriteError(w, r, http.StatusBadRequest, "invalid_json", err.Error())
		}
		return false
	}
	return true
}

// handler assembles the app's HTTP stack: recover, request id, access log, sidecar-token check,
// then the probes, the Dapr subscription endpoint and the module's routes.
func (k *Kernel) handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range k.routes {
		h := r.Handler
		if len(r.Access.Callers) > 0 {
			h = requireCaller(r.Access.Callers, h)
		}
		mux.Handle(r.Pattern, h)
	}
	for _, s := range k.subs {
		mux.Handle("POST "+s.Path, k.eventHandler(s))
	}
	// Subscriptions are declarative Dapr resources; the app declares none programmatically.
	mux.HandleFunc("GET /dapr/subscribe", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, []any{})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
	})

	probes := http.NewServeMux()
	probes.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	probes.HandleFunc("GET /readyz", k.readyz)
	protected := k.requireSidecar(mux)
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Probes carry no token: the runner, kubelet and the sidecar's health checks call them.
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			probes.ServeHTTP(w, r)
			return
		}
		protected.ServeHTTP(w, r)
	})
	return k.recoverer(k.requestID(k.accessLog(root)))
}

func (k *Kernel) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := true
	if !k.ready.Load() {
		ok = false
		checks["app"] = "starting or stopping"
	}
	if _, err := k.Dapr(); err != nil {
		ok = false
		checks["sidecar"] = err.Error()
	}
	if k.db != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		if err := k.db.Ping(ctx); err != nil {
			ok = false
			checks["database"] = err.Error()
		}
		cancel()
	}
	if !ok {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "checks": checks})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// requireSidecar refuses calls that do not carry the app API token, which only the app's own
// sidecar knows (Dapr sends it as the dapr-api-token header).
func (k *Kernel) requireSidecar(next http.Handler) http.Handler {
	want := []byte(k.cfg.AppAPIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("dapr-api-token"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			WriteError(w, r, http.StatusUnauthorized, "not_from_sidecar", "calls must come through the app's Dapr sidecar")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireCaller admits only calls whose calling app, as the sidecar reports it from the mTLS
// identity, is one of callers. Dapr access control already refuses the others; this keeps the
// route closed if the configuration is ever wrong.
func requireCaller(callers []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller := r.Header.Get("dapr-caller-app-id")
		if caller == "" || !slices.Contains(callers, caller) && !slices.Contains(callers, "*") {
			WriteError(w, r, http.StatusForbidden, "caller_not_allowed", "this internal route is only for "+strings.Join(callers, ", "))
			return
		}
		next.ServeHTTP(w, r)
	})
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID keeps a well-formed incoming X-Request-ID and makes one up otherwise.
func (k *Kernel) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !requestIDRE.MatchString(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (k *Kernel) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		k.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

func (k *Kernel) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				k.log.ErrorContext(r.Context(), "handler panicked", "panic", fmt.Sprint(v), "path", r.URL.Path)
				WriteError(w, r, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
