package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goplt/goplt/internal/contracts"
	"github.com/goplt/goplt/internal/eventsig"
)

// TopicRequestAudited carries one event per request to a route marked audit: true.
const TopicRequestAudited = "gateway.request.audited"

// RequestEvent is the payload (schema version 1) of gateway.request.audited. Audit indexes
// actor, action, resource and outcome as they are.
type RequestEvent struct {
	Version    int       `json:"version"`
	Actor      string    `json:"actor"`    // user:<id> or anonymous
	Action     string    `json:"action"`   // the permission, or "public"
	Resource   string    `json:"resource"` // the request path
	Outcome    string    `json:"outcome"`  // success (status < 400) or failure
	Route      string    `json:"route"`    // METHOD /pattern
	Decision   string    `json:"decision"` // allowed, denied, unauthenticated, public, unavailable
	Status     int       `json:"status"`
	RequestID  string    `json:"requestId"`
	ClientIP   string    `json:"clientIp"`
	DurationMS float64   `json:"durationMs"`
	At         time.Time `json:"at"`
}

// auditQueue publishes request events in the background, so responses do not wait for the
// broker. Events are retried until published; only a full queue (the broker down for long under
// load) loses events, and each loss is logged as an error and counted, never silent.
type auditQueue struct {
	ch      chan RequestEvent
	publish func(ctx context.Context, e RequestEvent) error
	log     *slog.Logger
	dropped atomic.Int64
	wg      sync.WaitGroup
}

func newAuditQueue(size int, publish func(ctx context.Context, e RequestEvent) error, log *slog.Logger) *auditQueue {
	return &auditQueue{ch: make(chan RequestEvent, size), publish: publish, log: log}
}

func (q *auditQueue) add(e RequestEvent) {
	select {
	case q.ch <- e:
	default:
		n := q.dropped.Add(1)
		q.log.Error("audit queue full: request event lost", "request_id", e.RequestID, "route", e.Route, "actor", e.Actor, "status", e.Status, "lost_total", n)
	}
}

// run publishes until ctx ends, then drains what is queued (bounded by drain).
func (q *auditQueue) run(ctx context.Context, workers int, drain time.Duration) {
	for range workers {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for {
				select {
				case e := <-q.ch:
					q.send(ctx, e)
				case <-ctx.Done():
					dctx, cancel := context.WithTimeout(context.Background(), drain)
					defer cancel()
					for {
						select {
						case e := <-q.ch:
							q.send(dctx, e)
						default:
							return
						}
					}
				}
			}
		}()
	}
}

func (q *auditQueue) send(ctx context.Context, e RequestEvent) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := q.publish(pctx, e)
		cancel()
		if err == nil {
			return
		}
		if errors.Is(err, contracts.ErrContract) { // the gateway's own bug: retrying cannot help
			n := q.dropped.Add(1)
			q.log.Error("request event breaks its contract: lost", "request_id", e.RequestID, "err", err, "lost_total", n)
			return
		}
		if ctx.Err() != nil {
			n := q.dropped.Add(1)
			q.log.Error("stopping with an unpublished request event", "request_id", e.RequestID, "err", err, "lost_total", n)
			return
		}
		if attempt%10 == 1 {
			q.log.Warn("publishing a request event failed; retrying", "request_id", e.RequestID, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (q *auditQueue) wait() { q.wg.Wait() }

// sidecarPublisher publishes through the sidecar's HTTP API, as a fresh CloudEvent signed by
// signer, once check (the event contract; nil: none) accepts it.
func sidecarPublisher(c *http.Client, sidecar, token, pubsub string, signer *eventsig.Signer, check func(topic string, payload []byte) error) func(ctx context.Context, e RequestEvent) error {
	return func(ctx context.Context, e RequestEvent) error {
		b, _ := json.Marshal(e)
		if check != nil {
			if err := check(TopicRequestAudited, b); err != nil {
				return err
			}
		}
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		ce, err := signer.Event(ctx, TopicRequestAudited, hex.EncodeToString(id), b)
		if err != nil {
			return err
		}
		u := sidecar + "/v1.0/publish/" + url.PathEscape(pubsub) + "/" + TopicRequestAudited
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(ce))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", eventsig.ContentType)
		req.Header.Set("dapr-api-token", token)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("sidecar answered %d", resp.StatusCode)
		}
		return nil
	}
}
