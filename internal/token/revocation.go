package token

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Revocations is the list auth publishes for strict verifiers: sessions ended (logout, reuse,
// a disabled or deleted user) and subjects whose tokens below a principal version are stale
// (their roles or status changed). It holds only what changed within an access token's
// lifetime: older entries concern expired tokens only.
type Revocations struct {
	Sessions []string        `json:"sessions"`
	Subjects []SubjectCutoff `json:"subjects"`
}

// SubjectCutoff makes every token of Subject whose version is below MinVersion stale.
type SubjectCutoff struct {
	Subject    string `json:"sub"`
	MinVersion int64  `json:"minVersion"`
}

// RevocationSource decides whether verified claims were revoked since they were issued.
type RevocationSource interface {
	// Check returns nil for claims still good, an *Error with CodeRevoked or CodeStale for
	// revoked ones, and one with CodeKeysDown when it cannot tell (fail closed).
	Check(ctx context.Context, c *Claims) error
}

var (
	errSessionRevoked = errors.New("the session was revoked")
	errStale          = errors.New("the user's roles or status changed after the token was issued; refresh it")
)

// index is a fetched list, ready for lookups.
type index struct {
	sessions map[string]bool
	subjects map[string]int64
}

func newIndex(r Revocations) index {
	ix := index{sessions: make(map[string]bool, len(r.Sessions)), subjects: make(map[string]int64, len(r.Subjects))}
	for _, id := range r.Sessions {
		ix.sessions[id] = true
	}
	for _, s := range r.Subjects {
		ix.subjects[s.Subject] = max(ix.subjects[s.Subject], s.MinVersion)
	}
	return ix
}

func (ix index) check(c *Claims) error {
	if ix.sessions[c.SessionID] {
		return fail(CodeRevoked, errSessionRevoked)
	}
	if floor, ok := ix.subjects[c.Subject]; ok && c.Version < floor {
		return fail(CodeStale, errStale)
	}
	return nil
}

// RevocationCache is a RevocationSource over a remote Revocations list, refetched when older
// than maxAge: a revocation takes effect within maxAge of auth recording it.
type RevocationCache struct {
	fetch  func(ctx context.Context) (Revocations, error)
	maxAge time.Duration

	mu      sync.Mutex
	ix      *index
	fetched time.Time
}

// NewRevocationCache returns a cache over fetch.
func NewRevocationCache(fetch func(ctx context.Context) (Revocations, error), maxAge time.Duration) *RevocationCache {
	return &RevocationCache{fetch: fetch, maxAge: maxAge}
}

// Check implements RevocationSource.
func (c *RevocationCache) Check(ctx context.Context, claims *Claims) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ix == nil || time.Since(c.fetched) > c.maxAge {
		list, err := c.fetch(ctx)
		if err != nil {
			return fail(CodeKeysDown, fmt.Errorf("revocation list: %w", err))
		}
		ix := newIndex(list)
		c.ix, c.fetched = &ix, time.Now()
	}
	return c.ix.check(claims)
}
