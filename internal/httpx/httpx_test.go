package httpx

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRequestIDAndErrors(t *testing.T) {
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if RequestIDFrom(r.Context()) != r.Header.Get("X-Request-ID") {
			t.Error("context and header disagree")
		}
		WriteError(w, r, http.StatusTeapot, "teapot", "short and stout")
	}))
	for in, keep := range map[string]bool{"abc-123.x:y": true, "": false, "has space": false, "<script>": false} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if in != "" {
			req.Header.Set("X-Request-ID", in)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-ID")
		if keep != (got == in) || got == "" {
			t.Errorf("incoming %q: id %q", in, got)
		}
		var body struct{ Error Error }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != "teapot" || body.Error.RequestID != got {
			t.Errorf("body %s", rec.Body)
		}
	}
}

func TestRecover(t *testing.T) {
	h := RequestID(Recover(slog.New(slog.NewTextHandler(io.Discard, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	rec2 := &StatusRecorder{ResponseWriter: httptest.NewRecorder()}
	_, _ = rec2.Write([]byte("x"))
	if rec2.Status != http.StatusOK {
		t.Fatalf("recorder status %d", rec2.Status)
	}
}

// The profiler answers on its own address and stops with its context; no address, no listener.
func TestStartProfiler(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := StartProfiler(t.Context(), "", log); err != nil {
		t.Fatalf("no address: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	if err := StartProfiler(ctx, addr, log); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("profiler answered %d: %.200s", resp.StatusCode, body)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := http.Get("http://" + addr + "/debug/pprof/"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("profiler still answers after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := StartProfiler(t.Context(), "127.0.0.1:notaport", log); err == nil {
		t.Error("a bad address: no error")
	}
}
