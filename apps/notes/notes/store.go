package notes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The notes live in the module's Dapr state store (spec.state in its manifest), shared by its
// replicas. Keys, under Dapr's "notes||" prefix (keyPrefix appid):
//
//	note-<id>      a note, with the ETag the API shows
//	delivered-<id> set when the note's event came back through the broker: kept apart, so
//	               that this bookkeeping never changes the ETag a client holds
//	owner-<user>   the ids of a user's notes: the index GET /notes reads; a deleted user's
//	               index is a tombstone ({"deleted": true}) kept for tombstoneTTL
//
// A write that involves a user changes their index in the same state transaction, under the
// index's ETag (or first-write when it has none yet). A deletion replaces the index by the
// tombstone the same way, so a note written for a user either lands before the deletion, which
// removes it, or fails the ETag check and, re-reading the index, is refused.

// maxNotesPerUser bounds one user's index (it is one value, read whole).
const maxNotesPerUser = 10000

// tombstoneTTL is how long a deleted user's tombstone stays: longer than any of their access
// tokens lives.
const tombstoneTTL = 24 * time.Hour

// deliveredTTL bounds the delivery mark of a note without expiry: a mark left behind by a
// note deleted as its event arrived goes by itself.
const deliveredTTL = 90 * 24 * time.Hour

// errStale is an ETag that no longer matches (another write came first).
var errStale = errors.New("the note changed since it was read")

// errGone is a user whose index is a tombstone.
var errGone = errors.New("the user was deleted")

// errTooMany is a user with maxNotesPerUser notes.
var errTooMany = fmt.Errorf("a user keeps at most %d notes", maxNotesPerUser)

func noteKey(id string) string      { return "note-" + id }
func deliveredKey(id string) string { return "delivered-" + id }
func ownerKey(user string) string   { return "owner-" + user }
func ttlMeta(secs int) map[string]string {
	if secs <= 0 {
		return nil
	}
	return map[string]string{"ttlInSeconds": strconv.Itoa(secs)}
}

// stored is a note as kept in the store.
type stored struct {
	ID        string     `json:"id"`
	Text      string     `json:"text"`
	Owner     string     `json:"owner,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Delivered bool       `json:"-"` // from deliveredKey
}

// ttlLeft is the note's remaining lifetime in whole seconds (0: it does not expire), which a
// rewrite must pass again: the store clears the expiry of a value saved without one.
func (s *stored) ttlLeft() int {
	if s.ExpiresAt == nil {
		return 0
	}
	return max(int(time.Until(*s.ExpiresAt).Seconds()), 1)
}

// index is a user's list of notes.
type index struct {
	Notes   []string `json:"notes"`
	Deleted bool     `json:"deleted,omitempty"`
}

// store is the notes' state store, through the sidecar.
type store struct {
	client func() (dapr.Client, error)
	name   string
}

func (st *store) get(ctx context.Context, key string, v any) (etag string, found bool, err error) {
	c, err := st.client()
	if err != nil {
		return "", false, err
	}
	it, err := c.GetStateWithConsistency(ctx, st.name, key, nil, dapr.StateConsistencyStrong)
	if err != nil {
		return "", false, fmt.Errorf("state store: get %s: %w", key, err)
	}
	if it == nil || len(it.Value) == 0 {
		return "", false, nil
	}
	if err := json.Unmarshal(it.Value, v); err != nil {
		return "", false, fmt.Errorf("state store: %s: %w", key, err)
	}
	return it.Etag, true, nil
}

// note reads a note, whether its event came back, and its ETag.
func (st *store) note(ctx context.Context, id string) (*stored, string, error) {
	c, err := st.client()
	if err != nil {
		return nil, "", err
	}
	items, err := c.GetBulkState(ctx, st.name, []string{noteKey(id), deliveredKey(id)}, nil, 2)
	if err != nil {
		return nil, "", fmt.Errorf("state store: get note %s: %w", id, err)
	}
	var n *stored
	var etag string
	delivered := false
	for _, it := range items {
		switch {
		case it.Error != "":
			return nil, "", fmt.Errorf("state store: %s: %s", it.Key, it.Error)
		case len(it.Value) == 0:
		case it.Key == noteKey(id):
			n = &stored{}
			if err := json.Unmarshal(it.Value, n); err != nil {
				return nil, "", fmt.Errorf("state store: %s: %w", it.Key, err)
			}
			etag = it.Etag
		default:
			delivered = true
		}
	}
	if n != nil {
		n.Delivered = delivered
	}
	return n, etag, nil
}

// markDelivered records that a note's event came back; it lives as long as the note could.
func (st *store) markDelivered(ctx context.Context, n *stored) error {
	c, err := st.client()
	if err != nil {
		return err
	}
	ttl := n.ttlLeft()
	if ttl == 0 {
		ttl = int(deliveredTTL.Seconds())
	}
	if err := c.SaveState(ctx, st.name, deliveredKey(n.ID), []byte(`{"delivered":true}`), ttlMeta(ttl)); err != nil {
		return fmt.Errorf("state store: mark %s delivered: %w", n.ID, err)
	}
	return nil
}

// replace writes n over the version with etag: errStale if another write came first.
func (st *store) replace(ctx context.Context, n *stored, etag string) error {
	c, err := st.client()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(n)
	err = c.SaveStateWithETag(ctx, st.name, noteKey(n.ID), b, etag, ttlMeta(n.ttlLeft()),
		dapr.WithConcurrency(dapr.StateConcurrencyFirstWrite), dapr.WithConsistency(dapr.StateConsistencyStrong))
	if c := status.Code(err); c == codes.Aborted || c == codes.InvalidArgument {
		return errStale // a mismatched or malformed ETag (or a note gone since)
	}
	if err != nil {
		return fmt.Errorf("state store: save %s: %w", n.ID, err)
	}
	return nil
}

// withoutIndex applies operations on notes that no user owns.
func (st *store) withoutIndex(ctx context.Context, ops ...*dapr.StateOperation) error {
	c, err := st.client()
	if err != nil {
		return err
	}
	if err := c.ExecuteStateTransaction(ctx, st.name, nil, ops); err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	return nil
}

// notes reads notes by id, leaving out those that are gone (expired).
func (st *store) notes(ctx context.Context, ids []string) ([]*stored, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	c, err := st.client()
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, 2*len(ids))
	for _, id := range ids {
		keys = append(keys, noteKey(id), deliveredKey(id))
	}
	items, err := c.GetBulkState(ctx, st.name, keys, nil, 4)
	if err != nil {
		return nil, fmt.Errorf("state store: bulk get: %w", err)
	}
	byID := map[string]*stored{}
	delivered := map[string]bool{}
	for _, it := range items {
		if it.Error != "" {
			return nil, fmt.Errorf("state store: %s: %s", it.Key, it.Error)
		}
		if len(it.Value) == 0 {
			continue
		}
		if id, ok := strings.CutPrefix(it.Key, "delivered-"); ok {
			delivered[id] = true
			continue
		}
		var n stored
		if err := json.Unmarshal(it.Value, &n); err != nil {
			return nil, fmt.Errorf("state store: %s: %w", it.Key, err)
		}
		byID[n.ID] = &n
	}
	var out []*stored
	for _, id := range ids { // the index's order: oldest first
		if n := byID[id]; n != nil {
			n.Delivered = delivered[id]
			out = append(out, n)
		}
	}
	return out, nil
}

// withIndex applies ops together with a change of user's index, under the index's ETag,
// retrying when another write to the index came first. change returns the new index and the
// operations to apply with it; it may return errGone or errTooMany.
func (st *store) withIndex(ctx context.Context, user string, change func(ix *index) (*index, []*dapr.StateOperation, error)) error {
	c, err := st.client()
	if err != nil {
		return err
	}
	for attempt := 0; attempt < 8; attempt++ {
		var ix index
		etag, found, err := st.get(ctx, ownerKey(user), &ix)
		if err != nil {
			return err
		}
		next, ops, err := change(&ix)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(next)
		item := &dapr.SetStateItem{Key: ownerKey(user), Value: b,
			Options: &dapr.StateOptions{Concurrency: dapr.StateConcurrencyFirstWrite, Consistency: dapr.StateConsistencyStrong}}
		if found {
			item.Etag = &dapr.ETag{Value: etag}
		}
		if next.Deleted {
			item.Metadata = ttlMeta(int(tombstoneTTL.Seconds()))
		}
		ops = append(ops, &dapr.StateOperation{Type: dapr.StateOperationTypeUpsert, Item: item})
		txErr := c.ExecuteStateTransaction(ctx, st.name, nil, ops)
		if txErr == nil {
			return nil
		}
		// The sidecar reports a transaction's ETag mismatch like any failure: the index's
		// ETag says which it was.
		var now index
		etag2, found2, err := st.get(ctx, ownerKey(user), &now)
		if err != nil {
			return err
		}
		if found2 == found && etag2 == etag {
			return fmt.Errorf("state store: transaction: %w", txErr)
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return errors.New("state store: the user's index kept changing; try again")
}
