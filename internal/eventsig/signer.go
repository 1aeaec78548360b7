package eventsig

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/goplt/goplt/internal/token"
)

// SigningKeyMaxAge is how long a signer uses its key before reading it again, so a rotation
// takes effect within it.
const SigningKeyMaxAge = time.Minute

// SecretFunc reads a secret's fields from the app's secret store (through its sidecar).
type SecretFunc func(ctx context.Context, name string) (map[string]string, error)

// Signer builds the signed CloudEvents an app publishes.
type Signer struct {
	app    string
	secret SecretFunc
	now    func() time.Time

	mu     sync.Mutex
	key    token.Key
	loaded time.Time
}

// NewSigner returns a signer for app, reading its key set (SigningSecret(app)) through secret.
func NewSigner(app string, secret SecretFunc) *Signer {
	return &Signer{app: app, secret: secret, now: time.Now}
}

// NewStaticSigner returns a signer that always signs with key (tests and tools).
func NewStaticSigner(app string, key token.Key) *Signer {
	return &Signer{app: app, now: time.Now, key: key, loaded: time.Now().Add(100 * 365 * 24 * time.Hour)}
}

// Key returns the app's current signing key.
func (s *Signer) Key(ctx context.Context) (token.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded.IsZero() && s.now().Sub(s.loaded) < SigningKeyMaxAge {
		return s.key, nil
	}
	key, err := s.load(ctx)
	if err != nil {
		if !s.loaded.IsZero() {
			return s.key, nil // keep signing with the key we have until the store answers
		}
		return token.Key{}, err
	}
	s.key, s.loaded = key, s.now()
	return key, nil
}

func (s *Signer) load(ctx context.Context) (token.Key, error) {
	name := SigningSecret(s.app)
	sec, err := s.secret(ctx, name)
	if err != nil {
		return token.Key{}, fmt.Errorf("read %s: %w", name, err)
	}
	ks, err := token.ParseKeySet([]byte(sec[KeySetField]))
	if err != nil {
		return token.Key{}, fmt.Errorf("%s: %w", name, err)
	}
	return ks.Signing()
}

// CloudEvent is an event as goplt publishes it. The sidecar keeps its id, source, type, time
// and extension attributes (content type application/cloudevents+json) and adds topic,
// pubsubname and trace context.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	KeyID           string          `json:"gopltkid"`
	Signature       string          `json:"gopltsig"`
}

// ContentType is what a signed event is published as.
const ContentType = "application/cloudevents+json"

// Event returns the signed CloudEvent (JSON) of data (JSON) on topic with the given id. Its
// type is the topic: the manifests give each topic one kind of event.
func (s *Signer) Event(ctx context.Context, topic, id string, data []byte) ([]byte, error) {
	key, err := s.Key(ctx)
	if err != nil {
		return nil, fmt.Errorf("event-signing key: %w", err)
	}
	e := CloudEvent{SpecVersion: "1.0", ID: id, Source: s.app, Type: topic,
		Time: s.now().UTC().Format(time.RFC3339Nano), DataContentType: "application/json", Data: data, KeyID: key.ID}
	e.Signature, err = Sign(key, Envelope{ID: e.ID, Source: e.Source, Type: e.Type, Topic: topic, Time: e.Time, Data: data})
	if err != nil {
		return nil, err
	}
	return json.Marshal(e)
}
