// Package client is the typed client of the authz service, for other apps (through the
// caller's own sidecar). It fails closed: a timeout, an unreachable authz, a refused or
// malformed answer all come back as a deny with the reason.
package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/goplt/goplt/internal/invoke"
)

// AppID is the authz service's Dapr app id.
const AppID = "authz"

// TopicPolicyChanged announces a runtime policy change (payload PolicyChange).
const TopicPolicyChanged = "authz.policy.changed"

// Subject is who asks: a user with its roles (from the access token), or an app.
type Subject struct {
	User  string   `json:"user,omitempty"`
	Roles []string `json:"roles,omitempty"`
	App   string   `json:"app,omitempty"`
}

// Check is one question: may Subject do Action (a permission) on Resource, given Context?
type Check struct {
	Subject  Subject        `json:"subject"`
	Action   string         `json:"action"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`
}

// Decision is the answer.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	Policy  string `json:"policy,omitempty"`
	// Unavailable marks a deny made by the client because authz could not answer (not a
	// policy decision: not worth caching, and a 503 rather than a 403 to the user).
	Unavailable bool `json:"-"`
}

// PolicyChange is the payload (schema version 1) of authz.policy.changed.
type PolicyChange struct {
	Version  int       `json:"version"`
	PolicyID string    `json:"policyId"`
	Op       string    `json:"op"` // "put" or "delete"
	Revision int64     `json:"revision"`
	Actor    string    `json:"actor,omitempty"`
	At       time.Time `json:"at"`
}

// MaxBatch is the most checks one batch may carry.
const MaxBatch = 100

// Client calls authz through a sidecar.
type Client struct {
	c       *invoke.Client
	timeout time.Duration
}

// New returns a client over the caller's sidecar; every decision is bounded by timeout
// (a slow authz is a deny, not a slow caller).
func New(c *invoke.Client, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	return &Client{c: c, timeout: timeout}
}

func deny(err error) Decision {
	return Decision{Reason: fmt.Sprintf("authz unavailable, denied: %v", err), Unavailable: true}
}

// Check asks one question. It never returns an allow it did not get from authz.
func (c *Client) Check(ctx context.Context, q Check) Decision {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d Decision
	if err := c.c.Call(ctx, http.MethodPost, AppID, "/internal/decisions", nil, q, &d); err != nil {
		return deny(err)
	}
	return d
}

// CheckBatch asks up to MaxBatch questions in one call; the answers are in order.
func (c *Client) CheckBatch(ctx context.Context, qs []Check) []Decision {
	out := make([]Decision, len(qs))
	fail := func(err error) []Decision {
		for i := range out {
			out[i] = deny(err)
		}
		return out
	}
	if len(qs) > MaxBatch {
		return fail(fmt.Errorf("batch of %d exceeds %d", len(qs), MaxBatch))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var resp struct {
		Decisions []Decision `json:"decisions"`
	}
	if err := c.c.Call(ctx, http.MethodPost, AppID, "/internal/decisions/batch", nil, map[string][]Check{"checks": qs}, &resp); err != nil {
		return fail(err)
	}
	if len(resp.Decisions) != len(qs) {
		return fail(fmt.Errorf("%d answers to %d checks", len(resp.Decisions), len(qs)))
	}
	return resp.Decisions
}
