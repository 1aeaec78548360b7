package stacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/localsecrets"
)

// CloudEvent is an event as Dapr puts it on a Kafka topic.
type CloudEvent struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Topic           string          `json:"topic"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	// Raw is the record's value as it is on the topic (a genuine event, signature and all,
	// for replays).
	Raw json.RawMessage `json:"-"`
}

// Topics reads topics straight from the broker, from their beginning, so tests see what was
// really published (not what a subscriber made of it).
type Topics struct {
	client *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events map[string][]CloudEvent
	errs   []error
}

// Consume starts reading topics. Close it when done.
func (s *Stack) Consume(topics ...string) (*Topics, error) {
	cl, err := s.KafkaClient(
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation(),
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Topics{client: cl, cancel: cancel, done: make(chan struct{}), events: map[string][]CloudEvent{}}
	go func() {
		defer close(t.done)
		for ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			fetches.EachRecord(func(r *kgo.Record) {
				var e CloudEvent
				t.mu.Lock()
				defer t.mu.Unlock()
				if err := json.Unmarshal(r.Value, &e); err != nil {
					t.errs = append(t.errs, fmt.Errorf("topic %s offset %d: not a CloudEvent: %w", r.Topic, r.Offset, err))
					return
				}
				e.Raw = r.Value
				t.events[r.Topic] = append(t.events[r.Topic], e)
			})
		}
	}()
	return t, nil
}

// Close stops reading.
func (t *Topics) Close() {
	t.cancel()
	<-t.done
	t.client.Close()
}

// Wait returns the first event on topic that match accepts, waiting up to timeout.
func (t *Topics) Wait(topic string, timeout time.Duration, match func(CloudEvent) bool) (CloudEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		for _, e := range t.events[topic] {
			if match(e) {
				t.mu.Unlock()
				return e, nil
			}
		}
		n, errs := len(t.events[topic]), t.errs
		t.mu.Unlock()
		if len(errs) > 0 {
			return CloudEvent{}, errs[0]
		}
		if time.Now().After(deadline) {
			return CloudEvent{}, fmt.Errorf("no matching event on %s within %s (%d events seen there)", topic, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// All returns the events seen on topic so far.
func (t *Topics) All(topic string) []CloudEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]CloudEvent(nil), t.events[topic]...)
}

// ValidateEvent checks data against the JSON Schema file (relative to the repository root)
// a manifest declares for the topic, formats included.
func (s *Stack) ValidateEvent(schemaPath string, data json.RawMessage) error {
	f, err := os.Open(filepath.Join(s.Root, schemaPath))
	if err != nil {
		return err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("event.json", doc); err != nil {
		return err
	}
	sch, err := c.Compile("event.json")
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// KafkaClient returns a client of the stack's broker authenticated as its superuser (tests
// that write or read topics directly; apps have their own users).
func (s *Stack) KafkaClient(opts ...kgo.Opt) (*kgo.Client, error) {
	admin, err := s.Endpoints().KafkaAdmin()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(append(admin.ClientOpts(), kgo.SeedBrokers(s.Endpoints().KafkaBrokers...)), opts...)...)
}

// SignedEvent returns the CloudEvent that app's kernel would publish on topic (signed with
// app's event key from the stack's secrets), for tests that write to the broker directly.
func (s *Stack) SignedEvent(app, topic, id string, data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return s.signer(app).Event(context.Background(), topic, id, b)
}

// signer is app's event signer over the stack's secrets file, made once per app (it keeps
// the key for a minute, as a kernel does), so load generators do not reread the file per event.
func (s *Stack) signer(app string) *eventsig.Signer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signers == nil {
		s.signers = map[string]*eventsig.Signer{}
	}
	if sg, ok := s.signers[app]; ok {
		return sg
	}
	file := s.Endpoints().SecretsFile
	sg := eventsig.NewSigner(app, func(context.Context, string) (map[string]string, error) {
		f, err := localsecrets.Read(file)
		if err != nil {
			return nil, err
		}
		sec, ok := f[eventsig.SigningSecret(app)]
		if !ok {
			return nil, fmt.Errorf("no event key for %s in %s (run the app once first)", app, file)
		}
		return sec, nil
	})
	s.signers[app] = sg
	return sg
}
