package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// JWK is an Ed25519 public key as a JSON Web Key (RFC 8037).
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK returns the JWK of k's public half.
func PublicJWK(k Key) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public()), Kid: k.ID, Use: "sig", Alg: "EdDSA"}
}

// PublicKeys returns the set's usable Ed25519 signing keys by kid.
func (s JWKS) PublicKeys() map[string]ed25519.PublicKey {
	out := make(map[string]ed25519.PublicKey, len(s.Keys))
	for _, k := range s.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		out[k.Kid] = ed25519.PublicKey(x)
	}
	return out
}

// StaticKeys is a fixed key set (tests, and the auth service verifying its own tokens).
type StaticKeys map[string]ed25519.PublicKey

// PublicKey implements KeySource.
func (s StaticKeys) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// JWKSCache is a KeySource over a remote JWKS (fetched through the sidecar). It refetches
// when the set is older than MaxAge and, at most at the limiter's rate, when a token names an
// unknown kid (a rotation); so a flood of tokens with made-up kids costs one fetch per
// interval, not one per token.
type JWKSCache struct {
	fetch  func(ctx context.Context) (JWKS, error)
	maxAge time.Duration
	limit  *rate.Limiter
	now    func() time.Time

	mu      sync.RWMutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

// NewJWKSCache returns a cache over fetch. maxAge bounds how long a set is used without
// refetching; minRefresh is the least time between fetches caused by unknown kids.
func NewJWKSCache(fetch func(ctx context.Context) (JWKS, error), maxAge, minRefresh time.Duration) *JWKSCache {
	return &JWKSCache{fetch: fetch, maxAge: maxAge, limit: rate.NewLimiter(rate.Every(minRefresh), 1), now: time.Now}
}

// PublicKey implements KeySource.
func (c *JWKSCache) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	c.mu.RLock()
	k, ok := c.keys[kid]
	fresh := c.keys != nil && c.now().Sub(c.fetched) <= c.maxAge
	c.mu.RUnlock()
	if ok && fresh {
		return k, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	stale := c.keys == nil || c.now().Sub(c.fetched) > c.maxAge
	if !stale {
		if k, ok := c.keys[kid]; ok {
			return k, nil
		}
		if !c.limit.Allow() {
			return nil, ErrUnknownKey
		}
	}
	if err := c.refresh(ctx); err != nil {
		if c.keys != nil {
			if k, ok := c.keys[kid]; ok {
				return k, nil // a fetch failure does not invalidate keys we already trust
			}
		}
		return nil, err
	}
	if k, ok := c.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (c *JWKSCache) refresh(ctx context.Context) error {
	set, err := c.fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	keys := set.PublicKeys()
	if len(keys) == 0 {
		return errors.New("fetch JWKS: the set has no Ed25519 signing keys")
	}
	c.keys, c.fetched = keys, c.now()
	return nil
}
