package gateway

import (
	"sync"
	"time"

	authz "github.com/goplt/goplt/apps/authz/client"
)

// decisionCache reuses authz answers for a short time (bounded; cleared when full).
type decisionCache struct {
	ttl time.Duration
	mu  sync.RWMutex
	m   map[string]cachedDecision
}

type cachedDecision struct {
	d   authz.Decision
	exp time.Time
}

const maxCachedDecisions = 100000

func (c *decisionCache) get(k string) (authz.Decision, bool) {
	if c.ttl <= 0 {
		return authz.Decision{}, false
	}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.exp) {
		return authz.Decision{}, false
	}
	return e.d, true
}

func (c *decisionCache) put(k string, d authz.Decision) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedDecisions {
		c.m = map[string]cachedDecision{}
	}
	c.m[k] = cachedDecision{d: d, exp: time.Now().Add(c.ttl)}
	c.mu.Unlock()
}
