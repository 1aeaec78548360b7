package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ory/ladon"
	"github.com/ory/ladon/manager/memory"
)

var (
	subjectVals  = []string{"user:alice", "user:bob", "role:blog.editor", "role:blog.reader", "role:admin", "user:<.*>", "role:<blog\\..+>", "<.*>", "role:<[a-z]+>", "user:<a.*>"}
	actionVals   = []string{"blog.post.read", "blog.post.update", "blog.post.delete", "identity.user.read", "blog.post.<.*>", "<.*>", "<blog|identity>.<.+>.read"}
	resourceVals = []string{"blog:post:1", "blog:post:2", "blog:comment:1", "<.*>", "blog:post:<[0-9]+>", "blog:<.*>", "blog:post:<1|2>"}

	reqSubjects  = []string{"user:alice", "user:bob", "user:carol", "role:blog.editor", "role:blog.reader", "role:admin", "role:x.y", ""}
	reqActions   = []string{"blog.post.read", "blog.post.update", "blog.post.delete", "identity.user.read", "identity.user.delete", "other"}
	reqResources = []string{"blog:post:1", "blog:post:2", "blog:post:10", "blog:comment:1", "identity:user:1", ""}
)

func pick(r *rand.Rand, vals []string, max int) []string {
	n := 1 + r.IntN(max)
	out := make([]string, n)
	for i := range out {
		out[i] = vals[r.IntN(len(vals))]
	}
	return out
}

// randomPolicies builds n policies from small vocabularies, so random requests often match.
func randomPolicies(r *rand.Rand, n int) []ladon.Policy {
	ps := make([]ladon.Policy, n)
	for i := range ps {
		p := &ladon.DefaultPolicy{
			ID:        fmt.Sprintf("p%d", i),
			Subjects:  pick(r, subjectVals, 3),
			Actions:   pick(r, actionVals, 3),
			Resources: pick(r, resourceVals, 2),
			Effect:    ladon.AllowAccess,
		}
		if r.IntN(5) == 0 {
			p.Effect = ladon.DenyAccess
		}
		switch r.IntN(6) {
		case 0:
			p.Conditions = ladon.Conditions{"owner": &ladon.EqualsSubjectCondition{}}
		case 1:
			p.Conditions = ladon.Conditions{"tier": &ladon.StringEqualCondition{Equals: "gold"}}
		}
		ps[i] = p
	}
	return ps
}

func randomRequest(r *rand.Rand) *ladon.Request {
	req := &ladon.Request{
		Subject:  reqSubjects[r.IntN(len(reqSubjects))],
		Action:   reqActions[r.IntN(len(reqActions))],
		Resource: reqResources[r.IntN(len(reqResources))],
		Context:  ladon.Context{},
	}
	if r.IntN(2) == 0 {
		req.Context["owner"] = reqSubjects[r.IntN(len(reqSubjects))]
	}
	if r.IntN(2) == 0 {
		req.Context["tier"] = []string{"gold", "silver"}[r.IntN(2)]
	}
	return req
}

func oracle(t testing.TB, ps []ladon.Policy) *ladon.Ladon {
	m := memory.NewMemoryManager()
	for _, p := range ps {
		if err := m.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	return &ladon.Ladon{Manager: m}
}

// differential checks the engine against ladon for one seed.
func differential(t *testing.T, seed uint64, policies, requests int) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ps := randomPolicies(r, policies)
	e, err := New(ps)
	if err != nil {
		t.Fatal(err)
	}
	l := oracle(t, ps)
	ctx := context.Background()
	for range requests {
		req := randomRequest(r)
		want := l.IsAllowed(ctx, req) == nil
		// Twice: the second answer comes from the engine's caches.
		for pass := range 2 {
			if got := e.Decide(ctx, req); got.Allowed != want {
				t.Fatalf("seed %d pass %d: engine %+v, ladon allowed=%v\nrequest %+v\npolicies %s", seed, pass, got, want, req, dump(ps))
			}
		}
	}
}

func dump(ps []ladon.Policy) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("  %s %s subjects=%v actions=%v resources=%v conditions=%v\n", p.GetID(), p.GetEffect(), p.GetSubjects(), p.GetActions(), p.GetResources(), p.GetConditions())
	}
	return s
}

func TestDifferentialAgainstLadon(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 100
	}
	for seed := range uint64(n) {
		differential(t, seed, 1+int(seed%12), 50)
	}
}

// FuzzDifferential runs in `make test` for a bounded time: any seed where the engine and
// ladon disagree is a bug.
func FuzzDifferential(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(s, uint8(5))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		differential(t, seed, 1+int(n%24), 30)
	})
}

func TestOwnerCondition(t *testing.T) {
	ps := []ladon.Policy{
		&ladon.DefaultPolicy{ID: "owner-edits", Subjects: []string{"user:<.+>"}, Actions: []string{"blog.post.update"},
			Resources: []string{"blog:post:<.+>"}, Effect: ladon.AllowAccess, Conditions: ladon.Conditions{"owner": &ladon.EqualsSubjectCondition{}}},
		&ladon.DefaultPolicy{ID: "role:blog.reader", Subjects: []string{"role:blog.reader"}, Actions: []string{"blog.post.read"}, Resources: []string{"<.*>"}, Effect: ladon.AllowAccess},
		&ladon.DefaultPolicy{ID: "banned", Subjects: []string{"user:mallory"}, Actions: []string{"<.*>"}, Resources: []string{"<.*>"}, Effect: ladon.DenyAccess},
	}
	e, err := New(ps)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		subjects []string
		action   string
		owner    string
		want     bool
	}{
		{[]string{"user:alice", "role:blog.reader"}, "blog.post.update", "user:alice", true},
		{[]string{"user:bob", "role:blog.reader"}, "blog.post.update", "user:alice", false},
		{[]string{"user:bob", "role:blog.reader"}, "blog.post.read", "user:alice", true},
		{[]string{"user:mallory", "role:blog.reader"}, "blog.post.read", "user:alice", false}, // deny wins
		{[]string{"user:mallory"}, "blog.post.update", "user:mallory", false},
		{nil, "blog.post.read", "", false},
	} {
		d := e.DecideAny(ctx, tc.subjects, tc.action, "blog:post:7", ladon.Context{"owner": tc.owner})
		if d.Allowed != tc.want || d.Reason == "" {
			t.Errorf("%v %s owner=%s: %+v, want allowed=%v", tc.subjects, tc.action, tc.owner, d, tc.want)
		}
	}
}
