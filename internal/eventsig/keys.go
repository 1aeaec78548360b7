package eventsig

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/goplt/goplt/internal/token"
)

// KeyCache is PublicKeys over the PublicKeysSecret (fetched through the sidecar's secret
// store). It refetches when its copy is older than maxAge and, at most once per minRefresh,
// when an event names a key it does not know (a rotation, or a new app): a flood of forged
// events costs one fetch per interval, not one per event. Only apps present in the secret
// are kept, so made-up sources cannot grow it.
type KeyCache struct {
	fetch  func(ctx context.Context) (map[string]string, error)
	maxAge time.Duration
	limit  *rate.Limiter

	mu      sync.Mutex
	keys    map[string]map[string]ed25519.PublicKey // app -> kid -> key
	fetched time.Time
}

// NewKeyCache returns a cache over fetch, which returns the secret's fields (app -> JWKS).
func NewKeyCache(fetch func(ctx context.Context) (map[string]string, error), maxAge, minRefresh time.Duration) *KeyCache {
	return &KeyCache{fetch: fetch, maxAge: maxAge, limit: rate.NewLimiter(rate.Every(minRefresh), 1)}
}

// PublicKey implements PublicKeys.
func (c *KeyCache) PublicKey(ctx context.Context, app, kid string) (ed25519.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stale := c.keys == nil || time.Since(c.fetched) > c.maxAge
	if k, ok := c.keys[app][kid]; ok && !stale {
		return k, nil
	}
	if !stale && !c.limit.Allow() {
		return nil, token.ErrUnknownKey
	}
	if err := c.refresh(ctx); err != nil {
		if k, ok := c.keys[app][kid]; ok {
			return k, nil // a failed fetch does not invalidate keys already trusted
		}
		return nil, err
	}
	if k, ok := c.keys[app][kid]; ok {
		return k, nil
	}
	return nil, token.ErrUnknownKey
}

func (c *KeyCache) refresh(ctx context.Context) error {
	fields, err := c.fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", PublicKeysSecret, err)
	}
	keys := make(map[string]map[string]ed25519.PublicKey, len(fields))
	for app, raw := range fields {
		var set token.JWKS
		if err := json.Unmarshal([]byte(raw), &set); err != nil {
			return fmt.Errorf("%s: field %s is not a JWKS: %w", PublicKeysSecret, app, err)
		}
		keys[app] = set.PublicKeys()
	}
	c.keys, c.fetched = keys, time.Now()
	return nil
}
