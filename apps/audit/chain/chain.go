// Package chain keeps the audit log tamper-evident: every entry is hashed (SHA-256) over a
// canonical encoding of its fields and the previous entry's hash, positions run 1, 2, 3...
// without gaps, and checkpoints sign the head (position and hash) with Ed25519. Verify
// recomputes the chain and names the first position where an edit, a deletion, a reordering
// or a truncated tail shows.
package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Entry is one audit record.
type Entry struct {
	Pos        int64
	EventID    string
	Topic      string
	Source     string
	Actor      string
	Action     string
	Resource   string
	Outcome    string
	OccurredAt time.Time
	RecordedAt time.Time
	// Payload is the event's data in canonical JSON (sorted keys, no insignificant space):
	// exactly the bytes hashed.
	Payload  string
	PrevHash []byte
	Hash     []byte
}

// Genesis is the previous hash of position 1.
var Genesis = make([]byte, sha256.Size)

// timeFormat has PostgreSQL's precision (microseconds), so times round-trip exactly.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// Sum returns the entry's hash over prev and its canonical encoding.
func (e *Entry) Sum(prev []byte) []byte {
	fields := []string{
		strconv.FormatInt(e.Pos, 10), e.EventID, e.Topic, e.Source, e.Actor, e.Action, e.Resource, e.Outcome,
		e.OccurredAt.UTC().Format(timeFormat), e.RecordedAt.UTC().Format(timeFormat), e.Payload,
	}
	enc, _ := json.Marshal(fields) // a JSON array of strings: unambiguous field boundaries
	h := sha256.New()
	h.Write(prev)
	h.Write(enc)
	return h.Sum(nil)
}

// hashBatch is how many rows a verify worker checks at a time.
const hashBatch = 1024

// hashCheck recomputes row hashes on every core, in batches, and remembers the first altered
// position of each batch.
type hashCheck struct {
	work    chan []Entry
	stopped bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	bad     []int64 // first altered position per batch that has one
}

func newHashCheck() *hashCheck {
	work := make(chan []Entry, 2*runtime.GOMAXPROCS(0))
	h := &hashCheck{work: work}
	for range runtime.GOMAXPROCS(0) {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for batch := range work {
				for i := range batch {
					if !bytes.Equal(batch[i].Sum(batch[i].PrevHash), batch[i].Hash) {
						h.mu.Lock()
						h.bad = append(h.bad, batch[i].Pos)
						h.mu.Unlock()
						break
					}
				}
			}
		}()
	}
	return h
}

func (h *hashCheck) add(batch []Entry) {
	if len(batch) > 0 {
		h.work <- batch
	}
}

// firstAltered waits for every batch and returns the lowest altered position.
func (h *hashCheck) firstAltered() (int64, bool) {
	h.stop()
	if len(h.bad) == 0 {
		return 0, false
	}
	return slices.Min(h.bad), true
}

func (h *hashCheck) stop() {
	if !h.stopped {
		h.stopped = true
		close(h.work)
		h.wg.Wait()
	}
}

// lockKey serialises appends: one writer extends the chain at a time.
const lockKey = `SELECT pg_advisory_xact_lock(hashtext('goplt.audit.chain'))`

// logColumns are the log's columns in the order AppendBatch writes them.
var logColumns = []string{"pos", "event_id", "topic", "source", "actor", "action", "resource", "outcome",
	"occurred_at", "recorded_at", "payload", "prev_hash", "hash"}

// AppendBatch adds the entries at the head of the chain in tx, in their order, skipping each
// whose event id is already in the log or earlier in the batch (redelivery): added says which
// were written. The chain is computed here and the rows go in with one COPY, under the same
// lock as every append, so positions stay gapless and the chain unbroken.
func AppendBatch(ctx context.Context, tx pgx.Tx, es []*Entry) (added []bool, err error) {
	added = make([]bool, len(es))
	if len(es) == 0 {
		return added, nil
	}
	if _, err := tx.Exec(ctx, lockKey); err != nil {
		return nil, err
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.EventID
	}
	// Planned afresh each time (unnamed statement): a cached generic plan made while the log
	// was small scans the whole table, and each batch would get slower as the log grows.
	rows, err := tx.Query(ctx, `SELECT event_id FROM log WHERE event_id = ANY($1)`, pgx.QueryExecModeExec, ids)
	if err != nil {
		return nil, err
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(es))
	for _, id := range present {
		seen[id] = true
	}
	var pos int64
	prev := Genesis
	err = tx.QueryRow(ctx, `SELECT pos, hash FROM log ORDER BY pos DESC LIMIT 1`).Scan(&pos, &prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	var out [][]any
	for i, e := range es {
		if seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		pos++
		e.Pos = pos
		e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
		e.RecordedAt = e.RecordedAt.UTC().Truncate(time.Microsecond)
		e.PrevHash = prev
		e.Hash = e.Sum(prev)
		prev = e.Hash
		out = append(out, []any{e.Pos, e.EventID, e.Topic, e.Source, e.Actor, e.Action, e.Resource, e.Outcome,
			e.OccurredAt, e.RecordedAt, e.Payload, e.PrevHash, e.Hash})
		added[i] = true
	}
	if len(out) == 0 {
		return added, nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"log"}, logColumns, pgx.CopyFromRows(out)); err != nil {
		return nil, err
	}
	return added, nil
}

// Checkpoint is a signed statement of the head.
type Checkpoint struct {
	Pos       int64
	Hash      []byte
	SignedAt  time.Time
	KeyID     string
	Signature []byte
}

func (c *Checkpoint) message() []byte {
	return []byte("goplt-audit-checkpoint\n" + strconv.FormatInt(c.Pos, 10) + "\n" + hex.EncodeToString(c.Hash) + "\n" +
		c.SignedAt.UTC().Format(timeFormat))
}

// WriteCheckpoint signs the current head in tx, if it moved since the last checkpoint.
func WriteCheckpoint(ctx context.Context, tx pgx.Tx, key ed25519.PrivateKey, kid string) (*Checkpoint, error) {
	if _, err := tx.Exec(ctx, lockKey); err != nil {
		return nil, err
	}
	c := &Checkpoint{KeyID: kid, SignedAt: time.Now().UTC().Truncate(time.Microsecond)}
	err := tx.QueryRow(ctx, `SELECT pos, hash FROM log ORDER BY pos DESC LIMIT 1`).Scan(&c.Pos, &c.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var last int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(pos), 0) FROM checkpoints`).Scan(&last); err != nil {
		return nil, err
	}
	if last >= c.Pos {
		return nil, nil
	}
	c.Signature = ed25519.Sign(key, c.message())
	_, err = tx.Exec(ctx, `INSERT INTO checkpoints (pos, hash, signed_at, kid, signature) VALUES ($1, $2, $3, $4, $5)`,
		c.Pos, c.Hash, c.SignedAt, c.KeyID, c.Signature)
	return c, err
}

// Result is the outcome of a verification.
type Result struct {
	OK   bool  `json:"ok"`
	Rows int64 `json:"rows"`
	// FirstBad is the first position where the log is not as it was written (0 when OK, or
	// when a witness could not be read: nothing is known to be wrong, nothing is confirmed).
	FirstBad int64  `json:"firstBad,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// Checkpoint is the position of the database's latest checkpoint (0: none yet).
	Checkpoint int64 `json:"checkpoint,omitempty"`
	// Witnesses says what each witness vouches for (the database's own checkpoint first).
	Witnesses []WitnessReport `json:"witnesses,omitempty"`
}

func bad(rows, pos int64, format string, args ...any) Result {
	return Result{Rows: rows, FirstBad: pos, Problem: fmt.Sprintf(format, args...)}
}

// Querier runs queries (a pool, a connection or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// databaseWitness names the database's own latest checkpoint among the witnesses.
const databaseWitness = "database"

// Verify recomputes the chain in q's log table (the search path picks the schema), and checks
// the database's latest checkpoint and every checkpoint the witnesses hold with pub: each must
// be validly signed, and the log must reach its position with the hash it signed. An error is
// a failure to read the database, not a finding; a witness that cannot be read is a finding.
func Verify(ctx context.Context, q Querier, pub ed25519.PublicKey, witnesses ...Witnessed) (Result, error) {
	// The checkpoint first: on a single connection, no other query may run while rows stream.
	latest, err := Latest(ctx, q)
	if err != nil {
		return Result{}, err
	}
	var sources []Witnessed
	if latest != nil {
		sources = append(sources, Witnessed{Name: databaseWitness, Checkpoints: []Checkpoint{*latest}})
	}
	sources = append(sources, witnesses...)
	vouched := map[int64][]byte{} // position -> the row hash there, for every checkpoint
	for _, s := range sources {
		for _, c := range s.Checkpoints {
			vouched[c.Pos] = nil
		}
	}
	rows, err := q.Query(ctx, `SELECT pos, event_id, topic, source, actor, action, resource, outcome, occurred_at, recorded_at, payload, prev_hash, hash
		FROM log ORDER BY pos`)
	if err != nil {
		return Result{}, err
	}
	defer rows.Close()
	// Each row stores the previous row's hash, so its own hash can be recomputed without the
	// rows before it: this goroutine reads rows and checks positions and links (cheap, in
	// order) while workers recompute hashes on the other cores, a batch at a time.
	hashes := newHashCheck()
	defer hashes.stop()
	var n, want int64 = 0, 1
	prev := Genesis
	var found *Result
	var cur []Entry
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Pos, &e.EventID, &e.Topic, &e.Source, &e.Actor, &e.Action, &e.Resource, &e.Outcome,
			&e.OccurredAt, &e.RecordedAt, &e.Payload, &e.PrevHash, &e.Hash); err != nil {
			return Result{}, err
		}
		n++
		if found != nil {
			continue // keep counting rows; the first problem is what matters
		}
		switch {
		case e.Pos != want:
			r := bad(n, want, "position %d is missing (the next row is %d): a row was deleted", want, e.Pos)
			found = &r
		case !bytes.Equal(e.PrevHash, prev):
			r := bad(n, e.Pos, "row %d does not follow row %d (its previous hash differs): rows were removed, inserted or reordered", e.Pos, e.Pos-1)
			found = &r
		}
		if _, ok := vouched[e.Pos]; ok {
			vouched[e.Pos] = e.Hash
		}
		prev, want = e.Hash, e.Pos+1
		if found == nil {
			cur = append(cur, e)
			if len(cur) == hashBatch {
				hashes.add(cur)
				cur = nil
			}
		}
	}
	if err := rows.Err(); err != nil {
		return Result{}, err
	}
	hashes.add(cur)
	// An altered row before the first broken link or gap is the first problem.
	if pos, ok := hashes.firstAltered(); ok && (found == nil || pos < found.FirstBad) {
		r := bad(n, pos, "row %d was altered: its content does not match its hash", pos)
		found = &r
	}
	if found != nil {
		found.Rows = n
		return *found, nil
	}
	res := Result{OK: true, Rows: n}
	if latest != nil {
		res.Checkpoint = latest.Pos
	}
	for _, s := range sources {
		rep, firstBad := judge(s, pub, n, vouched)
		res.Witnesses = append(res.Witnesses, rep)
		if rep.Problem != "" && res.OK {
			res.OK, res.FirstBad, res.Problem = false, firstBad, rep.Problem
		}
	}
	return res, nil
}

// judge checks what one witness holds against a log of n rows whose hashes at the vouched
// positions are known, and returns its report and the first bad position (0: none known).
func judge(s Witnessed, pub ed25519.PublicKey, n int64, vouched map[int64][]byte) (WitnessReport, int64) {
	rep := WitnessReport{Name: s.Name}
	who := "witness " + s.Name
	if s.Name == databaseWitness {
		who = "the database's checkpoint"
	}
	if s.Err != nil {
		rep.Problem = fmt.Sprintf("%s cannot be read: %v", who, s.Err)
		return rep, 0
	}
	if len(s.Malformed) > 0 {
		rep.Problem = fmt.Sprintf("%s holds a record that is not a checkpoint (%s): it was altered", who, s.Malformed[0])
		return rep, 0
	}
	var problem string
	var firstBad int64
	for _, c := range s.Checkpoints {
		if !c.Valid(pub) {
			if problem == "" {
				problem, firstBad = fmt.Sprintf("%s: checkpoint at %d has an invalid signature (key %s): forged or altered", who, c.Pos, c.KeyID), c.Pos
			}
			continue
		}
		rep.Pos = max(rep.Pos, c.Pos)
		switch {
		case c.Pos > n:
			if problem == "" {
				problem, firstBad = fmt.Sprintf("the log ends at %d but %s vouches for %d rows (signed %s): the tail was truncated",
					n, who, c.Pos, c.SignedAt.Format(time.RFC3339)), n+1
			}
		case !bytes.Equal(vouched[c.Pos], c.Hash):
			if problem == "" {
				problem, firstBad = fmt.Sprintf("row %d differs from %s signed at %s: the log was rewritten", c.Pos, who, c.SignedAt.Format(time.RFC3339)), c.Pos
			}
		}
	}
	rep.Problem = problem
	return rep, firstBad
}
