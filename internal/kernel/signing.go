package kernel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/goplt/goplt/internal/eventsig"
)

// Public key lifetimes: a subscriber refetches the public keys when its copy is older than
// publicKeysMaxAge, or (at most once per publicKeysMinRefresh) when an event names a key it
// does not know.
const (
	publicKeysMaxAge     = 5 * time.Minute
	publicKeysMinRefresh = 5 * time.Second
)

// eventKeys are the app's event signer and every app's public keys, both read from the
// secret store through the sidecar (docs/event-bus-security.md).
type eventKeys struct {
	signer *eventsig.Signer
	public *eventsig.KeyCache
}

func (k *Kernel) initEventKeys() {
	secret := func(ctx context.Context, name string) (map[string]string, error) {
		// The sidecar may deliver an event a moment before the kernel's client is connected.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := k.WaitDapr(wctx)
		if err != nil {
			return nil, err
		}
		return c.GetSecret(ctx, k.cfg.SecretStore, name, nil)
	}
	k.keys.signer = eventsig.NewSigner(k.cfg.AppID, secret)
	k.keys.public = eventsig.NewKeyCache(func(ctx context.Context) (map[string]string, error) {
		return secret(ctx, eventsig.PublicKeysSecret)
	}, publicKeysMaxAge, publicKeysMinRefresh)
}

// errRejected marks an event whose signature is missing or wrong: dropped to the
// dead-letter topic, never handled.
var errRejected = errors.New("event rejected")

// verify checks e's signature for a delivery on subscription s. A failure to fetch keys is
// returned as it is (the event is redelivered); a bad signature wraps errRejected and ErrDrop.
func (k *Kernel) verify(ctx context.Context, s Subscription, e Event) error {
	err := eventsig.Verify(ctx, k.keys.public,
		eventsig.Envelope{ID: e.ID, Source: e.Source, Type: e.Type, Topic: s.Topic, Time: e.Time, Data: e.Data, Canonical: e.canonical}, e.KeyID, e.Signature)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventsig.ErrUnsigned), errors.Is(err, eventsig.ErrUnknownKey), errors.Is(err, eventsig.ErrBadSignature):
		return fmt.Errorf("%w: %w: %w", ErrDrop, errRejected, err)
	default:
		return err
	}
}
