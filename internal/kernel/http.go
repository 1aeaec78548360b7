package kernel

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/goplt/goplt/internal/httpx"
	"github.com/goplt/goplt/internal/telemetry"
)

// Error is the JSON body of every error the kernel (and well-behaved modules) return.
type Error = httpx.Error

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) { httpx.WriteJSON(w, status, v) }

// WriteError writes the standard error body.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	httpx.WriteError(w, r, status, code, msg)
}

// Fail logs err with what failed and answers 500 with the standard body (no internals leak to
// the caller; the request id ties the answer to the log line). A call refused because the
// request's user was deleted (ErrSubjectDeleted) is answered 401 subject_deleted instead.
func (k *Kernel) Fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, ErrSubjectDeleted) {
		WriteError(w, r, http.StatusUnauthorized, "subject_deleted", "the user was deleted")
		return
	}
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
		// A server span per request named by the route's pattern (when tracing is on), and the
		// request's duration by route and status code.
		h = otelhttp.NewHandler(h, r.Pattern, otelhttp.WithTracerProvider(k.tel), otelhttp.WithMeterProvider(k.tel.Meters),
			otelhttp.WithPropagators(telemetry.Propagator))
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
	// Prometheus scrapes the app's own listener (never the gateway): counts and durations only,
	// no payloads, so no token.
	probes.Handle("GET /metrics", k.tel.MetricsHandler())
	protected := k.requireSidecar(mux)
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Probes carry no token: the runner, kubelet and the sidecar's health checks call them.
		if isProbe(r.URL.Path) {
			probes.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if k.deleted != nil && !safeMethod(r.Method) {
			ctx = withRequestSubject(ctx) // the deletion guard covers writes
		}
		protected.ServeHTTP(w, r.WithContext(ctx))
	})
	// Logs (the access log's too), and calls the handler makes through the sidecar, join the
	// request's trace.
	logged := k.accessLog(root)
	traced := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logged.ServeHTTP(w, r.WithContext(telemetry.Extract(r.Context(), r.Header)))
	})
	return httpx.Recover(k.log, httpx.RequestID(traced))
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

// isProbe says whether path is served without the sidecar's token and without an access log:
// health, readiness and the metrics scrape.
func isProbe(path string) bool { return path == "/healthz" || path == "/readyz" || path == "/metrics" }

func (k *Kernel) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &httpx.StatusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if isProbe(r.URL.Path) {
			return
		}
		k.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
			"status", rec.Status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}
