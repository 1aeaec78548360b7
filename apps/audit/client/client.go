// Package client is the typed client of the audit service, for other apps (through the
// caller's own sidecar).
package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/internal/invoke"
)

// AppID is the audit service's Dapr app id.
const AppID = "audit"

// Entry is one audit log entry.
type Entry struct {
	Pos        int64           `json:"pos"`
	EventID    string          `json:"eventId"`
	Topic      string          `json:"topic"`
	Source     string          `json:"source"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Resource   string          `json:"resource"`
	Outcome    string          `json:"outcome"`
	OccurredAt time.Time       `json:"occurredAt"`
	RecordedAt time.Time       `json:"recordedAt"`
	Payload    json.RawMessage `json:"payload"`
}

// Filter selects entries; empty fields match everything.
type Filter struct {
	Actor, Action, Resource, Outcome string
	From, To                         time.Time
	Limit                            int
	Cursor                           string
}

func (f Filter) query() string {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "resource": f.Resource, "outcome": f.Outcome, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q.Encode()
}

// Page is one page of entries.
type Page struct {
	Entries    []Entry `json:"entries"`
	NextCursor string  `json:"nextCursor,omitempty"`
}

// Verification is the result of a chain verification.
type Verification = chain.Result

// Client calls audit through a sidecar.
type Client struct{ c *invoke.Client }

// New returns a client over the caller's sidecar.
func New(c *invoke.Client) *Client { return &Client{c: c} }

// Entries returns one page of matching entries.
func (c *Client) Entries(ctx context.Context, f Filter) (*Page, error) {
	var p Page
	err := c.c.Call(ctx, http.MethodGet, AppID, "/audit/entries?"+f.query(), nil, nil, &p)
	return &p, err
}

// Verify recomputes the chain.
func (c *Client) Verify(ctx context.Context) (*Verification, error) {
	var v Verification
	err := c.c.Call(ctx, http.MethodGet, AppID, "/audit/verify", nil, nil, &v)
	return &v, err
}
