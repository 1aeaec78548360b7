// Package engine decides ory/ladon policies fast. ladon's in-memory manager hands every policy
// to every decision, and its matcher compiles patterns into a bounded LRU: at 1,000 policies a
// decision costs a scan of all of them, and once the patterns outnumber the cache, a recompile
// each. The engine instead compiles every pattern once (with ladon's own compiler, so matching
// is identical), indexes policies by action and by subject, and caches, per action and per
// subject string, which policies can match: a decision only evaluates the policies in the
// intersection. Resources and conditions are then checked exactly as ladon checks them, and
// the outcome follows ladon's rules: a matching deny wins; else a matching allow allows; else
// deny. ladon stays the oracle: the differential tests compare every decision with
// ladon.Ladon.IsAllowed.
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dlclark/regexp2"
	"github.com/ory/ladon"
	"github.com/ory/ladon/compiler"
)

// Decision is the outcome of one check.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	// Policy is the deciding policy: the deny that forbade, or the first allow that allowed.
	Policy string `json:"policy,omitempty"`
}

// matcher matches a string against a policy field: exact strings and compiled patterns.
type matcher struct {
	exact    []string
	patterns []*regexp2.Regexp
}

func newMatcher(p ladon.Policy, values []string) (matcher, error) {
	var m matcher
	for _, v := range values {
		if !strings.ContainsRune(v, rune(p.GetStartDelimiter())) {
			m.exact = append(m.exact, v)
			continue
		}
		re, err := compiler.CompileRegex(v, p.GetStartDelimiter(), p.GetEndDelimiter())
		if err != nil {
			return m, fmt.Errorf("policy %s: pattern %q: %w", p.GetID(), v, err)
		}
		m.patterns = append(m.patterns, re)
	}
	return m, nil
}

func (m *matcher) match(s string) (bool, error) {
	if slices.Contains(m.exact, s) {
		return true, nil
	}
	for _, re := range m.patterns {
		ok, err := re.MatchString(s)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

type compiled struct {
	policy                       ladon.Policy
	actions, subjects, resources matcher
}

// index finds the policies whose field can match a value.
type index struct {
	exact     map[string][]int32 // value -> policies listing it literally (ascending)
	patterned []int32            // policies with at least one pattern in the field
	field     func(*compiled) *matcher
	cache     *boundedCache
}

func newIndex(ps []compiled, field func(*compiled) *matcher, cacheSize int) *index {
	ix := &index{exact: map[string][]int32{}, field: field, cache: newBoundedCache(cacheSize)}
	for i := range ps {
		m := field(&ps[i])
		for _, v := range m.exact {
			if l := ix.exact[v]; len(l) == 0 || l[len(l)-1] != int32(i) {
				ix.exact[v] = append(l, int32(i))
			}
		}
		if len(m.patterns) > 0 {
			ix.patterned = append(ix.patterned, int32(i))
		}
	}
	return ix
}

// candidates returns, ascending, the policies whose field matches v.
func (ix *index) candidates(ps []compiled, v string) ([]int32, error) {
	if c, ok := ix.cache.get(v); ok {
		return c, nil
	}
	out := slices.Clone(ix.exact[v])
	for _, i := range ix.patterned {
		m := ix.field(&ps[i])
		if slices.Contains(m.exact, v) {
			continue // already listed
		}
		ok, err := m.match(v)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	ix.cache.put(v, out)
	return out, nil
}

// Engine decides over a fixed policy set; build a new one when policies change.
type Engine struct {
	policies []compiled
	actions  *index
	subjects *index
}

// Cache sizes: distinct actions are few (the permissions), distinct subjects many (users).
const (
	actionCacheSize  = 4096
	subjectCacheSize = 65536
)

// New compiles policies. A pattern that does not compile is an error (the policy admin API
// refuses such policies before they get here).
func New(policies []ladon.Policy) (*Engine, error) {
	e := &Engine{policies: make([]compiled, 0, len(policies))}
	for _, p := range policies {
		c := compiled{policy: p}
		var err error
		if c.actions, err = newMatcher(p, p.GetActions()); err != nil {
			return nil, err
		}
		if c.subjects, err = newMatcher(p, p.GetSubjects()); err != nil {
			return nil, err
		}
		if c.resources, err = newMatcher(p, p.GetResources()); err != nil {
			return nil, err
		}
		e.policies = append(e.policies, c)
	}
	e.actions = newIndex(e.policies, func(c *compiled) *matcher { return &c.actions }, actionCacheSize)
	e.subjects = newIndex(e.policies, func(c *compiled) *matcher { return &c.subjects }, subjectCacheSize)
	return e, nil
}

// Len is the number of policies.
func (e *Engine) Len() int { return len(e.policies) }

// errForced marks a deny by a matching deny policy.
var errForced = errors.New("forcefully denied")

// Decide decides a single-subject ladon request exactly as ladon.Ladon.IsAllowed would over
// the same policies (allowed <=> IsAllowed returns nil). Any matching error is a deny.
func (e *Engine) Decide(ctx context.Context, r *ladon.Request) Decision {
	d, _ := e.decide(ctx, r)
	return d
}

func (e *Engine) decide(ctx context.Context, r *ladon.Request) (Decision, error) {
	acts, err := e.actions.candidates(e.policies, r.Action)
	if err != nil {
		return Decision{Reason: "policy evaluation failed: " + err.Error()}, err
	}
	if len(acts) == 0 {
		return Decision{Reason: "no policy grants " + r.Action}, nil
	}
	subs, err := e.subjects.candidates(e.policies, r.Subject)
	if err != nil {
		return Decision{Reason: "policy evaluation failed: " + err.Error()}, err
	}
	allowedBy := ""
	// Walk the intersection of two ascending lists.
	for i, j := 0, 0; i < len(acts) && j < len(subs); {
		switch {
		case acts[i] < subs[j]:
			i++
			continue
		case acts[i] > subs[j]:
			j++
			continue
		}
		c := &e.policies[acts[i]]
		i++
		j++
		ok, err := c.resources.match(r.Resource)
		if err != nil {
			return Decision{Reason: "policy evaluation failed: " + err.Error()}, err
		}
		if !ok || !passesConditions(ctx, c.policy, r) {
			continue
		}
		if !c.policy.AllowAccess() {
			return Decision{Reason: "denied by policy " + c.policy.GetID(), Policy: c.policy.GetID()}, errForced
		}
		if allowedBy == "" {
			allowedBy = c.policy.GetID()
		}
	}
	if allowedBy == "" {
		return Decision{Reason: "no policy allows " + r.Subject + " to " + r.Action + " " + r.Resource}, nil
	}
	return Decision{Allowed: true, Reason: "allowed by policy " + allowedBy, Policy: allowedBy}, nil
}

func passesConditions(ctx context.Context, p ladon.Policy, r *ladon.Request) bool {
	for key, cond := range p.GetConditions() {
		if !cond.Fulfills(ctx, r.Context[key], r) {
			return false
		}
	}
	return true
}

// DecideAny decides for a principal known by several subjects (a user and each of its roles):
// a deny matching any subject wins; else an allow for any subject allows; else deny.
func (e *Engine) DecideAny(ctx context.Context, subjects []string, action, resource string, rctx ladon.Context) Decision {
	var allow *Decision
	for _, s := range subjects {
		d, err := e.decide(ctx, &ladon.Request{Subject: s, Action: action, Resource: resource, Context: rctx})
		if err != nil {
			d.Allowed = false
			return d // a forced deny or an evaluation error: deny now
		}
		if d.Allowed && allow == nil {
			allow = &d
		}
	}
	if allow != nil {
		return *allow
	}
	if len(subjects) == 0 {
		return Decision{Reason: "no subject"}
	}
	return Decision{Reason: "no policy allows " + strings.Join(subjects, ", ") + " to " + action + " " + resource}
}

// boundedCache maps strings to candidate lists; when full it starts over (so memory stays
// bounded under a flood of distinct subjects, at the cost of recomputing).
type boundedCache struct {
	limit int64
	n     atomic.Int64
	m     atomic.Pointer[sync.Map]
}

func newBoundedCache(limit int) *boundedCache {
	c := &boundedCache{limit: int64(limit)}
	c.m.Store(&sync.Map{})
	return c
}

func (c *boundedCache) get(k string) ([]int32, bool) {
	v, ok := c.m.Load().Load(k)
	if !ok {
		return nil, false
	}
	return v.([]int32), true
}

func (c *boundedCache) put(k string, v []int32) {
	if c.n.Add(1) > c.limit {
		c.m.Store(&sync.Map{})
		c.n.Store(1)
	}
	c.m.Load().Store(k, v)
}
