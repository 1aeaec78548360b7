package token

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// CachedVerifier remembers tokens that verified, until they expire (at most a minute), so a
// client sending the same token on every request costs one signature check a minute instead
// of one per request. Revocation (strict mode) is still checked on every call. Failures are
// not cached.
type CachedVerifier struct {
	v     *Verifier
	limit int64
	n     atomic.Int64
	m     atomic.Pointer[sync.Map] // [32]byte -> cachedClaims
}

type cachedClaims struct {
	c   *Claims
	exp time.Time
}

// Cached wraps v with a cache of at most limit tokens (when full it starts over).
func (v *Verifier) Cached(limit int) *CachedVerifier {
	c := &CachedVerifier{v: v, limit: int64(limit)}
	c.m.Store(&sync.Map{})
	return c
}

const maxCacheFor = time.Minute

// Verify is Verifier.Verify with the cache in front.
func (c *CachedVerifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" || len(raw) > MaxSize {
		return c.v.Verify(ctx, raw)
	}
	key := sha256.Sum256([]byte(raw))
	now := time.Now()
	if c.v.Now != nil {
		now = c.v.Now()
	}
	if e, ok := c.m.Load().Load(key); ok {
		cc := e.(cachedClaims)
		if now.Before(cc.exp) {
			if c.v.Revocations != nil {
				if err := c.v.Revocations.Check(ctx, cc.c); err != nil {
					return nil, err
				}
			}
			return cc.c, nil
		}
	}
	claims, err := c.v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	exp := now.Add(maxCacheFor)
	if t := claims.ExpiresAt.Time; t.Before(exp) {
		exp = t
	}
	if c.n.Add(1) > c.limit {
		c.m.Store(&sync.Map{})
		c.n.Store(1)
	}
	c.m.Load().Store(key, cachedClaims{c: claims, exp: exp})
	return claims, nil
}
