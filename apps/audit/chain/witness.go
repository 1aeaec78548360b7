package chain

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// A checkpoint stored in the database can be deleted together with the rows it vouches for
// by whoever can rewrite the database (its superuser). Witnesses keep copies elsewhere (a
// file on a volume of its own, a broker topic, a remote service); a verifier trusts the
// largest checkpoint any of them holds, so a shortened log shows even when the database's
// checkpoints went with it.

// CheckpointTopic carries every signed checkpoint: a witness on the bus that only audit may
// write (the broker's ACLs follow audit's manifest).
const CheckpointTopic = "audit.checkpoint"

// checkpointJSON is a checkpoint as witnesses keep it.
type checkpointJSON struct {
	Pos       int64     `json:"pos"`
	Hash      string    `json:"hash"` // hex
	SignedAt  time.Time `json:"signedAt"`
	KeyID     string    `json:"kid"`
	Signature string    `json:"signature"` // base64
}

// MarshalJSON writes the checkpoint as witnesses keep it.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkpointJSON{Pos: c.Pos, Hash: hex.EncodeToString(c.Hash), SignedAt: c.SignedAt.UTC(),
		KeyID: c.KeyID, Signature: base64.StdEncoding.EncodeToString(c.Signature)})
}

// UnmarshalJSON reads a checkpoint as witnesses keep it.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var w checkpointJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	h, err := hex.DecodeString(w.Hash)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(w.Signature)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	*c = Checkpoint{Pos: w.Pos, Hash: h, SignedAt: w.SignedAt.UTC(), KeyID: w.KeyID, Signature: sig}
	return nil
}

// Valid says whether the checkpoint is signed by pub's private key.
func (c *Checkpoint) Valid(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, c.message(), c.Signature)
}

// Latest returns the database's latest checkpoint, nil when there is none.
func Latest(ctx context.Context, q Querier) (*Checkpoint, error) {
	var c Checkpoint
	err := q.QueryRow(ctx, `SELECT pos, hash, signed_at, kid, signature FROM checkpoints ORDER BY pos DESC LIMIT 1`).
		Scan(&c.Pos, &c.Hash, &c.SignedAt, &c.KeyID, &c.Signature)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Witnessed is what one witness holds, as read by a verifier.
type Witnessed struct {
	// Name says where the witness is (file:/path, topic:audit.checkpoint, https://...).
	Name        string
	Checkpoints []Checkpoint
	// Malformed lists records that are not checkpoints at all (a witness edited by hand).
	Malformed []string
	// Err is why the witness could not be read: reported, never skipped.
	Err error
}

// WitnessReport is one witness's verdict in a Result.
type WitnessReport struct {
	Name string `json:"name"`
	// Pos is the largest position the witness vouches for with a valid signature.
	Pos     int64  `json:"pos"`
	Problem string `json:"problem,omitempty"`
}

// WitnessVolume is audit's volume (spec.app.volumes in manifests/audit.yaml) that holds its
// witness file.
const WitnessVolume = "witness"

// LocalWitnessDir is where audit's witness volume is under volumesDir ($GOPLT_VOLUMES, the
// local stack's <home>/data/volumes), as the kernel lays volumes out: <app id>/<volume>.
func LocalWitnessDir(volumesDir string) string {
	return filepath.Join(volumesDir, "audit", WitnessVolume)
}

// WitnessFile is the file a folder witness appends checkpoints to, one JSON line each.
const WitnessFile = "checkpoints.jsonl"

// CreateWitness creates the witness file in dir when missing, so that from then on a missing
// file means a lost or removed witness, never a log without checkpoints yet.
func CreateWitness(dir string) error { return appendWitness(dir, nil) }

// AppendWitness appends c to the witness file in dir and syncs it to disk.
func AppendWitness(dir string, c *Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return appendWitness(dir, append(b, '\n'))
}

func appendWitness(dir string, line []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, WitnessFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadWitnessDir reads the witness file in dir. A file that does not exist is an error: a
// witness that has never been written to vouches for nothing, and saying so is the point.
func ReadWitnessDir(dir string) Witnessed {
	path := filepath.Join(dir, WitnessFile)
	w := Witnessed{Name: "file:" + path}
	f, err := os.Open(path)
	if err != nil {
		w.Err = err
		return w
	}
	defer f.Close()
	w.Checkpoints, w.Malformed, w.Err = ReadCheckpoints(f)
	return w
}

// ReadCheckpoints reads checkpoints as JSON lines (or one JSON object); lines that are not
// checkpoints are returned as malformed, by line number.
func ReadCheckpoints(r io.Reader) (cps []Checkpoint, malformed []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var c Checkpoint
		if err := json.Unmarshal(line, &c); err != nil {
			malformed = append(malformed, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		cps = append(cps, c)
	}
	return cps, malformed, sc.Err()
}
