package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ory/ladon"
)

// benchPolicies is a plausible policy set of n policies: 80% role grants (exact subject and
// actions, any resource), 20% per-user grants with an action pattern and a resource pattern
// of their own (runtime policies such as "alice may update her posts").
func benchPolicies(n int) []ladon.Policy {
	ps := make([]ladon.Policy, n)
	for i := range ps {
		if i%5 == 4 {
			ps[i] = &ladon.DefaultPolicy{ID: fmt.Sprintf("u%d", i), Effect: ladon.AllowAccess,
				Subjects:  []string{fmt.Sprintf("user:u%d", i)},
				Actions:   []string{fmt.Sprintf("m%d.post.<read|update>", i%100)},
				Resources: []string{fmt.Sprintf("m%d:post:<%d[0-9]*>", i%100, i)}}
			continue
		}
		ps[i] = &ladon.DefaultPolicy{ID: fmt.Sprintf("r%d", i), Effect: ladon.AllowAccess,
			Subjects:  []string{fmt.Sprintf("role:r%d", i)},
			Actions:   []string{fmt.Sprintf("m%d.post.read", i%100), fmt.Sprintf("m%d.post.create", i%100)},
			Resources: []string{"<.*>"}}
	}
	return ps
}

func benchRequests(n int) []*ladon.Request {
	r := rand.New(rand.NewPCG(1, 2))
	reqs := make([]*ladon.Request, 1024)
	for k := range reqs {
		i := r.IntN(n)
		if i%5 == 4 {
			reqs[k] = &ladon.Request{Subject: fmt.Sprintf("user:u%d", i), Action: fmt.Sprintf("m%d.post.update", i%100), Resource: fmt.Sprintf("m%d:post:%d1", i%100, i)}
		} else {
			reqs[k] = &ladon.Request{Subject: fmt.Sprintf("role:r%d", i), Action: fmt.Sprintf("m%d.post.read", i%100), Resource: "m1:post:1"}
		}
	}
	return reqs
}

// BenchmarkDecide compares the engine with plain ladon (in-memory manager) on the same policies
// and requests, at 10 to 10,000 policies. Run with -cpu 1 for decisions per second per core.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 100, 1000, 10000} {
		ps := benchPolicies(n)
		reqs := benchRequests(n)
		e, err := New(ps)
		if err != nil {
			b.Fatal(err)
		}
		l := oracle(b, ps)
		for _, r := range reqs[:50] { // the two must agree on the benchmark's own requests
			if e.Decide(ctx, r).Allowed != (l.IsAllowed(ctx, r) == nil) {
				b.Fatalf("engine and ladon disagree on %+v", r)
			}
		}
		b.Run(fmt.Sprintf("engine/policies=%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				if !e.Decide(ctx, reqs[i%len(reqs)]).Allowed {
					b.Fatal("denied")
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("ladon/policies=%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				if err := l.IsAllowed(ctx, reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
