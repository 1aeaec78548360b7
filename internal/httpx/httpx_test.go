package httpx

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
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
