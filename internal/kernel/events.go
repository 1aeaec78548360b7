package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	dapr "github.com/dapr/go-sdk/client"
)

// Event is a CloudEvent as Dapr delivers it.
type Event struct {
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Topic           string          `json:"topic"`
	PubSubName      string          `json:"pubsubname"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	TraceParent     string          `json:"traceparent"`
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s on %s: %w", e.ID, e.Topic, err)
	}
	return nil
}

// EventHandler processes one event. Returning nil acknowledges it; returning ErrDrop (or an
// error wrapping it) discards it (to the dead-letter topic when one is configured); any other
// error makes Dapr deliver it again. Handlers must be idempotent: delivery is at least once.
type EventHandler func(ctx context.Context, e Event) error

// ErrDrop marks an event that can never be processed (poison): retrying would not help.
var ErrDrop = errors.New("event dropped")

// maxEventBytes bounds one delivered event.
const maxEventBytes = 4 << 20

func (k *Kernel) eventHandler(s Subscription) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Event
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxEventBytes)).Decode(&e); err != nil {
			// Unreadable now means unreadable forever: drop (never 404, which Dapr also drops
			// but logs as a missing route).
			k.log.ErrorContext(r.Context(), "undecodable event dropped", "topic", s.Topic, "err", err)
			WriteJSON(w, http.StatusOK, map[string]string{"status": "DROP"})
			return
		}
		ctx := r.Context()
		if r.Header.Get("X-Request-ID") == "" {
			ctx = WithRequestID(ctx, "event-"+e.ID) // logs of one event's deliveries share an id
		}
		err := s.Handler(ctx, e)
		switch {
		case err == nil:
			WriteJSON(w, http.StatusOK, map[string]string{"status": "SUCCESS"})
		case errors.Is(err, ErrDrop):
			k.log.WarnContext(ctx, "event dropped", "topic", s.Topic, "event_id", e.ID, "err", err)
			WriteJSON(w, http.StatusOK, map[string]string{"status": "DROP"})
		default:
			k.log.WarnContext(ctx, "event failed, will be redelivered", "topic", s.Topic, "event_id", e.ID, "err", err)
			WriteJSON(w, http.StatusInternalServerError, map[string]string{"status": "RETRY"})
		}
	})
}

// Publish sends v as JSON on topic through the sidecar's pub/sub component. A non-empty
// eventID becomes the CloudEvent id, so subscribers can deduplicate redeliveries.
func (k *Kernel) Publish(ctx context.Context, topic, eventID string, v any) error {
	c, err := k.Dapr()
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("publish %s: encode: %w", topic, err)
	}
	opts := []dapr.PublishEventOption{dapr.PublishEventWithContentType("application/json")}
	if eventID != "" {
		opts = append(opts, dapr.PublishEventWithMetadata(map[string]string{"cloudevent.id": eventID}))
	}
	if err := c.PublishEvent(ctx, k.cfg.PubSub, topic, b, opts...); err != nil {
		return fmt.Errorf("publish %s via %s: %w", topic, k.cfg.PubSub, err)
	}
	return nil
}
