package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/internal/kernel"
)

// rewitnessEvery re-sends the latest checkpoint when the head has not moved, so a witness
// whose retention drops old records (a topic's) always holds it.
const rewitnessEvery = 6 * time.Hour

// A witness keeps copies of signed checkpoints outside the database.
type witness interface {
	name() string
	put(ctx context.Context, c *chain.Checkpoint) error
}

// dirWitness appends to the witness file on audit's own volume.
type dirWitness struct{ dir string }

func (w dirWitness) name() string { return "file:" + w.dir }
func (w dirWitness) put(_ context.Context, c *chain.Checkpoint) error {
	return chain.AppendWitness(w.dir, c)
}

// CheckpointEvent is the payload on chain.CheckpointTopic.
type CheckpointEvent struct {
	Version int `json:"version"`
	chain.Checkpoint
}

// MarshalJSON adds the payload version to the checkpoint's witness form.
func (e CheckpointEvent) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(e.Checkpoint)
	if err != nil {
		return nil, err
	}
	return append([]byte(fmt.Sprintf(`{"version":%d,`, e.Version)), b[1:]...), nil
}

// PartitionKey keeps every checkpoint on one partition, in order, and lets a compacted topic
// keep the latest.
func (CheckpointEvent) PartitionKey() string { return "audit" }

// topicWitness publishes on chain.CheckpointTopic, signed like every event.
type topicWitness struct{ k *kernel.Kernel }

func (topicWitness) name() string { return "topic:" + chain.CheckpointTopic }
func (w topicWitness) put(ctx context.Context, c *chain.Checkpoint) error {
	id := fmt.Sprintf("audit-checkpoint-%d-%d", c.Pos, c.SignedAt.UnixMicro())
	return w.k.Publish(ctx, chain.CheckpointTopic, id, CheckpointEvent{Version: 1, Checkpoint: *c})
}

// urlWitness POSTs each checkpoint (its JSON form) to a remote witness.
type urlWitness struct {
	url    string
	client *http.Client
}

func (w urlWitness) name() string { return w.url }
func (w urlWitness) put(ctx context.Context, c *chain.Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", w.url, resp.Status)
	}
	return nil
}

// witnessed is what a witness last took.
type witnessed struct {
	pos int64
	at  time.Time
}

// witnessAll hands the database's latest checkpoint to every witness that does not hold it
// yet (or has not been given it for rewitnessEvery). A witness that fails is tried again at
// the next tick; the others are not held up.
func (m *Module) witnessAll(ctx context.Context) {
	c, err := chain.Latest(ctx, m.k.DB())
	if err != nil || c == nil {
		if err != nil && ctx.Err() == nil {
			m.k.Log().Warn("read the latest checkpoint to witness it", "err", err)
		}
		return
	}
	for i, w := range m.witnesses {
		last := m.witnessedBy[i]
		if c.Pos <= last.pos && time.Since(last.at) < rewitnessEvery {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.put(wctx, c)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.k.Log().Warn("witness did not take the checkpoint; will retry", "witness", w.name(), "pos", c.Pos, "err", err)
			}
			continue
		}
		m.witnessedBy[i] = witnessed{pos: c.Pos, at: time.Now()}
	}
}
