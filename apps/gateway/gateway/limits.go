package gateway

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Rate per second, Burst at once.
type Limit struct {
	Rate  float64
	Burst int
}

// ParseLimits reads "class=rate:burst,..." (e.g. "default=50:100,login=5:10,subject=100:200").
func ParseLimits(s string) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, spec, ok := strings.Cut(part, "=")
		r, b, ok2 := strings.Cut(spec, ":")
		rv, err1 := strconv.ParseFloat(r, 64)
		bv, err2 := strconv.Atoi(b)
		if !ok || !ok2 || err1 != nil || err2 != nil || rv <= 0 || bv < 1 {
			return nil, fmt.Errorf("rate limit %q: want class=rate:burst, e.g. login=5:10", part)
		}
		out[name] = Limit{Rate: rv, Burst: bv}
	}
	return out, nil
}

// limiters keeps a token bucket per key, forgetting keys idle for a while so a flood of
// distinct addresses cannot grow memory without bound.
type limiters struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

const (
	idleForget = 10 * time.Minute
	maxBuckets = 200000
)

// allow takes a token for key under lim; when refused, it says how long until one is free.
func (ls *limiters) allow(key string, lim Limit, now time.Time) (bool, time.Duration) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.buckets == nil {
		ls.buckets = map[string]*bucket{}
	}
	if now.Sub(ls.swept) > time.Minute || len(ls.buckets) > maxBuckets {
		for k, b := range ls.buckets {
			if now.Sub(b.seen) > idleForget || len(ls.buckets) > maxBuckets {
				delete(ls.buckets, k)
			}
		}
		ls.swept = now
	}
	b := ls.buckets[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(rate.Limit(lim.Rate), lim.Burst)}
		ls.buckets[key] = b
	}
	b.seen = now
	r := b.l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, time.Duration(math.Ceil(d.Seconds())) * time.Second
	}
	return true, 0
}
