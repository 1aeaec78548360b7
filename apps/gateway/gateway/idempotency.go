package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/goplt/goplt/internal/httpx"
)

// IdempotencyKeyHeader is the request header that makes a write apply once.
const IdempotencyKeyHeader = "Idempotency-Key"

// ReplayedHeader marks an answer served from the idempotency store.
const ReplayedHeader = "Idempotent-Replayed"

// maxStoredAnswer bounds the answer body kept for replays; a larger answer is kept without
// its body (a replay says so in ReplayedHeader).
const maxStoredAnswer = 256 << 10

// replayedHeaders are the answer headers a replay repeats.
var replayedHeaders = []string{"Content-Type", "Location", "ETag", "Last-Modified"}

// idempotencyStore keeps, per principal and key, the fingerprint of the first request and the
// module's answer in the gateway's Dapr state store (through its sidecar's HTTP API), so that
// every gateway instance sees the same records.
type idempotencyStore struct {
	sidecar, token, store string
	client                *http.Client
	ttl                   time.Duration
	// abandonAfter is how old a claim may be before another request takes it over: the
	// gateway that made it is gone (no request outlives the gateway's timeout).
	abandonAfter time.Duration
}

// idemRecord is one stored key.
type idemRecord struct {
	State       string            `json:"state"` // pending, then done
	Fingerprint string            `json:"fingerprint"`
	Started     time.Time         `json:"started"`
	Status      int               `json:"status,omitempty"`
	Header      map[string]string `json:"header,omitempty"`
	Body        []byte            `json:"body,omitempty"`
	BodyDropped bool              `json:"bodyDropped,omitempty"` // the answer was over maxStoredAnswer
}

var errStoreConflict = errors.New("idempotency: the key changed under us")

func (s *idempotencyStore) stateURL(key string) string {
	u := s.sidecar + "/v1.0/state/" + url.PathEscape(s.store)
	if key != "" {
		u += "/" + url.PathEscape(key)
	}
	return u
}

// get reads a record and its ETag; nil if there is none (or it expired).
func (s *idempotencyStore) get(ctx context.Context, key string) (*idemRecord, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.stateURL(key)+"?metadata.consistency=strong", nil)
	req.Header.Set("dapr-api-token", s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("idempotency store: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2*maxStoredAnswer))
	switch {
	case resp.StatusCode == http.StatusNoContent || (resp.StatusCode == http.StatusOK && len(bytes.TrimSpace(b)) == 0):
		return nil, "", nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", fmt.Errorf("idempotency store: get: %d %s", resp.StatusCode, b)
	}
	var rec idemRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, "", fmt.Errorf("idempotency store: record %s: %w", key, err)
	}
	return &rec, resp.Header.Get("ETag"), nil
}

// save writes a record. firstWrite without an ETag succeeds only if the key is absent; with
// an ETag only if the record is unchanged. Any refusal is errStoreConflict; the state store
// reports a first write onto an existing key like any failure, so the caller reads the key to
// tell the two apart.
func (s *idempotencyStore) save(ctx context.Context, key string, rec *idemRecord, etag string, firstWrite bool) error {
	item := map[string]any{"key": key, "value": rec, "metadata": map[string]string{"ttlInSeconds": strconv.Itoa(int(s.ttl.Seconds()))}}
	if etag != "" {
		item["etag"] = etag
	}
	if firstWrite {
		item["options"] = map[string]string{"concurrency": "first-write", "consistency": "strong"}
	}
	body, _ := json.Marshal([]any{item})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.stateURL(""), bytes.NewReader(body))
	req.Header.Set("dapr-api-token", s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("idempotency store: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusConflict || firstWrite:
		return fmt.Errorf("%w: %d %s", errStoreConflict, resp.StatusCode, msg)
	}
	return fmt.Errorf("idempotency store: save: %d %s", resp.StatusCode, msg)
}

// release deletes a claim, so that a retry with the same key can run.
func (s *idempotencyStore) release(ctx context.Context, key string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, s.stateURL(key), nil)
	req.Header.Set("dapr-api-token", s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("idempotency store: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("idempotency store: delete: %d", resp.StatusCode)
	}
	return nil
}

// idempotencyKey is the state key of a principal's key: keys are per principal, so one user
// cannot reach another's answers, and neither the key nor the user id is stored in clear.
func idempotencyKey(subject, key string) string {
	h := sha256.Sum256([]byte(subject + "\x00" + key))
	return "idem-" + hex.EncodeToString(h[:])
}

// fingerprint identifies a request: the same key with another fingerprint is a client error.
func fingerprint(method, route, path, subject string, body []byte) string {
	h := sha256.New()
	for _, s := range []string{method, route, path, subject} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// validIdempotencyKey accepts 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotent applies a write that carries an Idempotency-Key once: the first request with the
// key claims it (first write wins) and its answer is stored; a repeat with the same request gets
// that answer without reaching the module; a repeat with another request is refused (422); a
// repeat while the first still runs gets 409. A claim whose request never finished (its
// gateway stopped) is taken over, through the record's ETag, by exactly one later request.
func (g *Gateway) idempotent(w *httpx.StatusRecorder, r *http.Request, rt *Route, path, ip, subject, key string, body []byte) {
	if !validIdempotencyKey(key) {
		writeError(w, r, http.StatusBadRequest, "invalid_idempotency_key", IdempotencyKeyHeader+" must be 1 to 255 printable ASCII characters")
		return
	}
	ctx := r.Context()
	sk := idempotencyKey(subject, key)
	fp := fingerprint(r.Method, rt.Path, path, subject, body)
	claim := &idemRecord{State: "pending", Fingerprint: fp, Started: time.Now().UTC()}
	claimed := false
	for attempt := 0; attempt < 3 && !claimed; attempt++ {
		err := g.idem.save(ctx, sk, claim, "", true)
		if err == nil {
			claimed = true
			break
		}
		if !errors.Is(err, errStoreConflict) {
			g.idemUnavailable(w, r, err)
			return
		}
		rec, etag, err := g.idem.get(ctx, sk)
		switch {
		case err != nil:
			g.idemUnavailable(w, r, err)
			return
		case rec == nil:
			continue // expired between the two calls, or the claim failed for another reason
		case rec.Fingerprint != fp:
			writeError(w, r, http.StatusUnprocessableEntity, "idempotency_key_reused", "this "+IdempotencyKeyHeader+" was used for another request")
			return
		case rec.State == "done":
			replay(w, rec)
			return
		case time.Since(rec.Started) < g.idem.abandonAfter:
			w.Header().Set("Retry-After", "1")
			writeError(w, r, http.StatusConflict, "idempotency_in_progress", "a request with this "+IdempotencyKeyHeader+" is still being processed")
			return
		}
		// Abandoned: one taker wins through the ETag.
		if err := g.idem.save(ctx, sk, claim, etag, true); err == nil {
			claimed = true
		} else if !errors.Is(err, errStoreConflict) {
			g.idemUnavailable(w, r, err)
			return
		}
	}
	if !claimed {
		g.idemUnavailable(w, r, errors.New("could not claim the key"))
		return
	}
	tee := &teeWriter{ResponseWriter: w}
	g.forward(tee, r, rt, path, ip)
	// The client has its answer before it is recorded (one state write off its path). A
	// repeat in that moment gets 409, and a gateway that dies in it leaves a claim that is
	// taken over when abandoned: the same window as dying while the module works.
	tee.Flush()
	// The module decided (2xx, 4xx): keep its answer. A 5xx means it did not finish: free the
	// key for a retry, except after a timeout, when the module may still be applying the
	// request: that claim stays until it is abandoned.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	status := tee.status()
	switch {
	case status == http.StatusGatewayTimeout:
	case status >= 500:
		if err := g.idem.release(sctx, sk); err != nil {
			g.log.WarnContext(ctx, "idempotency: could not free a key after a failed request", "err", err)
		}
	default:
		done := &idemRecord{State: "done", Fingerprint: fp, Started: claim.Started, Status: status, Header: map[string]string{}}
		for _, h := range replayedHeaders {
			if v := tee.Header().Get(h); v != "" {
				done.Header[h] = v
			}
		}
		if tee.overflow {
			done.BodyDropped = true
		} else {
			done.Body = tee.buf.Bytes()
		}
		if err := g.idem.save(sctx, sk, done, "", false); err != nil {
			g.log.ErrorContext(ctx, "idempotency: answer not stored; a retry will wait for the claim to be abandoned", "err", err)
		}
	}
}

func (g *Gateway) idemUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	g.log.WarnContext(r.Context(), "idempotency store unavailable", "err", err)
	w.Header().Set("Retry-After", "2")
	writeError(w, r, http.StatusServiceUnavailable, "idempotency_unavailable", "the request could not be made idempotent now; retry later")
}

// replay writes a stored answer.
func replay(w http.ResponseWriter, rec *idemRecord) {
	for h, v := range rec.Header {
		w.Header().Set(h, v)
	}
	if rec.BodyDropped {
		w.Header().Set(ReplayedHeader, "true; body-not-stored")
	} else {
		w.Header().Set(ReplayedHeader, "true")
	}
	w.WriteHeader(rec.Status)
	_, _ = w.Write(rec.Body)
}

// teeWriter passes an answer through and keeps a copy of its body (up to maxStoredAnswer).
type teeWriter struct {
	http.ResponseWriter
	code     int
	buf      bytes.Buffer
	overflow bool
}

func (t *teeWriter) WriteHeader(code int) {
	if t.code == 0 {
		t.code = code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(b []byte) (int, error) {
	if t.code == 0 {
		t.code = http.StatusOK
	}
	if !t.overflow {
		if t.buf.Len()+len(b) > maxStoredAnswer {
			t.overflow = true
			t.buf.Reset()
		} else {
			t.buf.Write(b)
		}
	}
	return t.ResponseWriter.Write(b)
}

func (t *teeWriter) status() int {
	if t.code == 0 {
		return http.StatusOK
	}
	return t.code
}

// Flush keeps streamed answers streaming.
func (t *teeWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
