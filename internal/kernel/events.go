package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

	dapr "github.com/dapr/go-sdk/client"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/outbox"
	"github.com/goplt/goplt/internal/telemetry"
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
	Time            string          `json:"time"`
	// The publisher's signature (internal/eventsig), checked before any handler sees the event.
	KeyID     string `json:"gopltkid"`
	Signature string `json:"gopltsig"`

	canonical string // Data's canonical form, kept from the signature check
}

// CanonicalData is the event's data re-encoded canonically (eventsig.Canonical: keys sorted,
// numbers as written): computed once, when the signature was checked.
func (e Event) CanonicalData() (string, error) {
	if e.canonical != "" {
		return e.canonical, nil
	}
	return eventsig.Canonical(e.Data)
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

// maxEventBytes bounds one delivered event; maxDeliveryBytes bounds a whole bulk delivery (up
// to 1,000 events, each checked against maxEventBytes on its own).
const (
	maxEventBytes    = 4 << 20
	maxDeliveryBytes = 64 << 20
)

// BulkEventHandler processes a batch of events, in delivery order, and returns one result per
// event with the meaning EventHandler's error has: nil done, ErrDrop dropped, anything else
// redelivered. A nil slice means every event is done.
type BulkEventHandler func(ctx context.Context, events []Event) []error

// delivery is what Dapr posts to a subscription route: one CloudEvent, or a bulk envelope whose
// entries each carry one (Dapr bulk subscribe).
type delivery struct {
	Event
	Entries []struct {
		EntryID string          `json:"entryId"`
		Event   json.RawMessage `json:"event"`
	} `json:"entries"`
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type bulkStatus struct {
	EntryID string `json:"entryId"`
	Status  string `json:"status"`
}

func (k *Kernel) eventHandler(s Subscription) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery
		body := &countingReader{r: http.MaxBytesReader(w, r.Body, maxDeliveryBytes)}
		if err := json.NewDecoder(body).Decode(&d); err != nil {
			// Unreadable now means unreadable forever: drop (never 404, which Dapr also drops
			// but logs as a missing route). A bulk body Dapr itself sent is always readable.
			k.log.ErrorContext(r.Context(), "undecodable event dropped", "topic", s.Topic, "err", err)
			WriteJSON(w, http.StatusOK, map[string]string{"status": "DROP"})
			return
		}
		if d.Entries == nil {
			if body.n > maxEventBytes { // whatever the Content-Length said (chunked bodies have none)
				k.log.ErrorContext(r.Context(), "oversized event dropped", "topic", s.Topic, "bytes", body.n)
				WriteJSON(w, http.StatusOK, map[string]string{"status": "DROP"})
				return
			}
			e := d.Event
			ctx := r.Context()
			if r.Header.Get("X-Request-ID") == "" {
				ctx = WithRequestID(ctx, "event-"+e.ID) // logs of one event's deliveries share an id
			}
			status := k.status(ctx, s, e, k.handle(ctx, s, []Event{e})[0])
			code := http.StatusOK
			if status == "RETRY" {
				code = http.StatusInternalServerError
			}
			WriteJSON(w, code, map[string]string{"status": status})
			return
		}
		// A batch: entries that do not decode are dropped, the rest handled together.
		statuses := make([]bulkStatus, len(d.Entries))
		var events []Event
		var index []int
		for i, en := range d.Entries {
			statuses[i].EntryID = en.EntryID
			var e Event
			if len(en.Event) > maxEventBytes {
				k.log.ErrorContext(r.Context(), "oversized event dropped", "topic", s.Topic, "entry", en.EntryID, "bytes", len(en.Event))
				statuses[i].Status = "DROP"
				continue
			}
			if err := json.Unmarshal(en.Event, &e); err != nil {
				k.log.ErrorContext(r.Context(), "undecodable event dropped", "topic", s.Topic, "entry", en.EntryID, "err", err)
				statuses[i].Status = "DROP"
				continue
			}
			events = append(events, e)
			index = append(index, i)
		}
		for j, err := range k.handle(r.Context(), s, events) {
			statuses[index[j]].Status = k.status(r.Context(), s, events[j], err)
		}
		WriteJSON(w, http.StatusOK, map[string][]bulkStatus{"statuses": statuses})
	})
}

// handle verifies each event's signature (except on dead-letter subscriptions), then runs the
// subscription's handler over the genuine ones: one result per event.
func (k *Kernel) handle(ctx context.Context, s Subscription, events []Event) []error {
	errs := make([]error, len(events))
	if len(events) == 0 {
		return errs
	}
	genuine, index := events, []int(nil)
	if !s.DeadLetters {
		genuine = make([]Event, 0, len(events))
		for i, err := range k.checkAll(ctx, s, events) {
			if err != nil {
				errs[i] = err
				continue
			}
			genuine = append(genuine, events[i])
			index = append(index, i)
		}
	} else {
		for i := range events {
			index = append(index, i)
		}
	}
	if len(genuine) == 0 {
		return errs
	}
	if s.Bulk != nil {
		ctx, end := k.batchSpans(ctx, s.Topic, genuine)
		defer func() { end(func(j int) error { return errs[index[j]] }) }()
		got := s.Bulk(ctx, genuine)
		if got != nil && len(got) != len(genuine) {
			err := fmt.Errorf("bulk handler for %s returned %d results for %d events", s.Topic, len(got), len(genuine))
			for _, i := range index {
				errs[i] = err // a handler bug: redeliver rather than lose
			}
			return errs
		}
		for j, i := range index {
			if got != nil {
				errs[i] = got[j]
			}
		}
		return errs
	}
	for j, e := range genuine {
		// Each event's handling joins its publisher's trace, one by one in a bulk delivery too.
		errs[index[j]] = k.handleOne(ctx, s, e)
	}
	return errs
}

// batchSpans starts a span per event in that event's publisher's trace, so each publisher's
// trace shows its event handled, and a batch span linked to them, which ctx carries for the
// handler. end closes them all, each event's with its result.
func (k *Kernel) batchSpans(ctx context.Context, topic string, events []Event) (context.Context, func(result func(i int) error)) {
	spans := make([]trace.Span, len(events))
	links := make([]trace.Link, 0, len(events))
	for i, e := range events {
		_, spans[i] = k.tracer.Start(telemetry.WithTraceParent(ctx, e.TraceParent), "handle "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", topic), attribute.String("messaging.message.id", e.ID)))
		if sc := spans[i].SpanContext(); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, batch := k.tracer.Start(ctx, "handle "+topic+" batch", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("messaging.destination.name", topic), attribute.Int("messaging.batch.message_count", len(events))))
	return ctx, func(result func(i int) error) {
		batch.End()
		for i, sp := range spans {
			if err := result(i); err != nil {
				sp.SetStatus(codes.Error, err.Error())
			}
			sp.End()
		}
	}
}

// handleOne runs the subscription's handler over one event in a span of the publisher's
// trace: the handler's logs, SQL and calls join it, across the bus.
func (k *Kernel) handleOne(ctx context.Context, s Subscription, e Event) error {
	ctx, span := k.tracer.Start(telemetry.WithTraceParent(ctx, e.TraceParent), "handle "+s.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", s.Topic), attribute.String("messaging.message.id", e.ID)))
	defer span.End()
	err := s.Handler(ctx, e)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// checkAll verifies each event's signature and holds its payload to the contract, parsing
// each payload once for both, and keeps the canonical data for the handlers.
func (k *Kernel) checkAll(ctx context.Context, s Subscription, events []Event) []error {
	errs := make([]error, len(events))
	check := func(i int) {
		e := &events[i]
		// A payload that is not JSON fails the signature check (which then parses it itself).
		decoded, err := eventsig.Decode(e.Data)
		if err == nil {
			e.canonical, _ = eventsig.CanonicalOf(decoded)
		}
		if errs[i] = k.verify(ctx, s, *e); errs[i] == nil {
			errs[i] = k.checkIncoming(s, decoded)
		}
	}
	// A signature check is ~45 µs of Ed25519; a bulk delivery's are independent, and the
	// sidecar waits for the whole batch, so a large batch is checked on every core.
	workers := min(runtime.GOMAXPROCS(0), len(events)/minPerWorker)
	if workers <= 1 {
		for i := range events {
			check(i)
		}
		return errs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(events); i = int(next.Add(1) - 1) {
				check(i)
			}
		})
	}
	wg.Wait()
	return errs
}

// minPerWorker is the least number of events worth a goroutine of their own.
const minPerWorker = 16

// status turns a handler's result into Dapr's delivery status, logging what is not success.
func (k *Kernel) status(ctx context.Context, s Subscription, e Event, err error) string {
	st := k.outcome(ctx, s, e, err)
	k.countEvent(ctx, s, e, st)
	return st
}

// outcome is the answer to the sidecar for an event, logged when it is not a success.
func (k *Kernel) outcome(ctx context.Context, s Subscription, e Event, err error) string {
	switch {
	case err == nil:
		return "SUCCESS"
	case errors.Is(err, errRejected):
		k.log.WarnContext(ctx, "event rejected, dead-lettered", "topic", s.Topic, "event_id", e.ID, "source", e.Source, "reason", err)
		return "DROP"
	case errors.Is(err, ErrDrop):
		k.log.WarnContext(ctx, "event dropped", "topic", s.Topic, "event_id", e.ID, "err", err)
		return "DROP"
	default:
		k.log.WarnContext(ctx, "event failed, will be redelivered", "topic", s.Topic, "event_id", e.ID, "err", err)
		return "RETRY"
	}
}

// Publish sends v as JSON on topic through the sidecar's pub/sub component, as a CloudEvent
// signed with the app's key. A non-empty eventID becomes the CloudEvent id, so subscribers can
// deduplicate redeliveries. When v is outbox.Keyed, its key picks the partition.
func (k *Kernel) Publish(ctx context.Context, topic, eventID string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("publish %s: encode: %w", topic, err)
	}
	if err := k.checkOutgoing(topic, b); err != nil {
		return err
	}
	return k.publish(ctx, topic, eventID, v)
}

// publish is Publish without the contract check (outbox rows were checked when added). It
// runs in a producer span whose context goes to the sidecar, which puts it into the
// CloudEvent's traceparent: subscribers continue the trace.
func (k *Kernel) publish(ctx context.Context, topic, eventID string, v any) (err error) {
	ctx, span := k.tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", topic)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	if tp := telemetry.TraceParent(ctx); tp != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tp)
	}
	c, err := k.Dapr()
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("publish %s: encode: %w", topic, err)
	}
	if eventID == "" {
		eventID = outbox.NewEventID()
	}
	ce, err := k.keys.signer.Event(ctx, topic, eventID, b)
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	opts := []dapr.PublishEventOption{dapr.PublishEventWithContentType(eventsig.ContentType)}
	if kv, ok := v.(outbox.Keyed); ok && kv.PartitionKey() != "" {
		// Same key, same partition: the order of one entity's events holds.
		opts = append(opts, dapr.PublishEventWithMetadata(map[string]string{"partitionKey": kv.PartitionKey()}))
	}
	if err := c.PublishEvent(ctx, k.cfg.PubSub, topic, ce, opts...); err != nil {
		return fmt.Errorf("publish %s via %s: %w", topic, k.cfg.PubSub, err)
	}
	return nil
}
