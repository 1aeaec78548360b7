package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/goplt/goplt/apps/audit/audit"
	"github.com/goplt/goplt/apps/audit/chain"
	auditclient "github.com/goplt/goplt/apps/audit/client"
	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/bustool"
	"github.com/goplt/goplt/internal/invoke"
)

// remoteWitness is a remote witness as a third party might run one: it keeps what audit
// POSTs and answers GET with JSON lines.
type remoteWitness struct {
	*httptest.Server
	mu    sync.Mutex
	lines [][]byte
}

func newRemoteWitness() *remoteWitness {
	w := &remoteWitness{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch r.Method {
		case http.MethodPost:
			b, err := io.ReadAll(r.Body)
			if err != nil || !json.Valid(b) {
				http.Error(rw, "not JSON", http.StatusBadRequest)
				return
			}
			w.lines = append(w.lines, b)
			rw.WriteHeader(http.StatusNoContent)
		case http.MethodGet:
			for _, l := range w.lines {
				rw.Write(append(l, '\n'))
			}
		}
	}))
	return w
}

// held is what the remote witness holds.
func (w *remoteWitness) held() chain.Witnessed {
	w.mu.Lock()
	defer w.mu.Unlock()
	cps, malformed, err := chain.ReadCheckpoints(bytes.NewReader(bytes.Join(w.lines, []byte("\n"))))
	return chain.Witnessed{Name: w.URL, Checkpoints: cps, Malformed: malformed, Err: err}
}

// witnessDir is audit's witness volume on the test stack.
func witnessDir() string {
	return chain.LocalWitnessDir(stack.Endpoints().VolumesDir)
}

// largest is the largest position among w's checkpoints.
func largest(w chain.Witnessed) int64 {
	var p int64
	for _, c := range w.Checkpoints {
		p = max(p, c.Pos)
	}
	return p
}

// goplt runs the goplt command against the test stack's home.
func goplt(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(stack.Home, "goplt"), append([]string{"--home", stack.Home}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The attack of issue 23: a PostgreSQL superuser deletes the tail of the log together with
// the checkpoints that vouch for it. The database alone still verifies; the witnesses outside
// it (audit's witness file and the checkpoint topic) do not let it pass. So for a rewrite with
// recomputed hashes, a witness file edited by hand, and a checkpoint forged without the key.
func TestWitnessesCatchTheDatabaseSuperuser(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	for range 3 {
		activity(t)
	}
	pub := checkpointKey(t)
	// Wait until the head is checkpointed, both witnesses hold that checkpoint, and it has
	// stayed so for 3 s: events of the activity may still be arriving (a head taken while the
	// log grew made the edited-witness case miss its line, seen once in CI).
	bus := bustool.Bus{Brokers: stack.Endpoints().KafkaBrokers, SecretsFile: stack.Endpoints().SecretsFile}
	deadline := time.Now().Add(60 * time.Second)
	var head, settled int64
	var settledAt time.Time
	for {
		var cp int64
		if err := db(t).QueryRow(ctx, `SELECT (SELECT coalesce(max(pos),0) FROM audit.log), (SELECT coalesce(max(pos),0) FROM audit.checkpoints)`).Scan(&head, &cp); err != nil {
			t.Fatal(err)
		}
		var onTopic int64
		if events, err := bus.Read(ctx, chain.CheckpointTopic); err == nil && len(events) > 0 {
			var c chain.Checkpoint
			if c.UnmarshalJSON(events[len(events)-1].Data) == nil && events[len(events)-1].Verified == nil {
				onTopic = c.Pos
			}
		}
		switch {
		case head < 10 || cp != head || largest(chain.ReadWitnessDir(witnessDir())) != head || onTopic != head || largest(remote.held()) != head:
			settled = 0
		case head != settled:
			settled, settledAt = head, time.Now()
		}
		if settled == head && settled != 0 && time.Since(settledAt) >= 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("head %d: checkpoint %d, witness file %d, topic %d, remote %d", head, cp, largest(chain.ReadWitnessDir(witnessDir())), onTopic, largest(remote.held()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	file := chain.ReadWitnessDir(witnessDir())
	cut := head - 4

	t.Run("rows and checkpoints deleted", func(t *testing.T) {
		conn := copyLog(t, "audit_witness_cut")
		trim(t, conn, head)
		for _, q := range []string{`DELETE FROM checkpoints WHERE pos > $1`, `DELETE FROM log WHERE pos > $1`} {
			if _, err := conn.Exec(ctx, q, cut); err != nil {
				t.Fatal(err)
			}
		}
		if res, err := chain.Verify(ctx, conn, pub); err != nil || !res.OK {
			t.Fatalf("the database alone should still verify (the hole witnesses close): %+v %v", res, err)
		}
		res, err := chain.Verify(ctx, conn, pub, file)
		if err != nil || res.OK || res.FirstBad != cut+1 || !strings.Contains(res.Problem, "truncated") || !strings.Contains(res.Problem, file.Name) {
			t.Fatalf("with the witness file: %+v %v", res, err)
		}
		out, err := goplt("audit", "verify", "--schema", "audit_witness_cut", "--database-url", stack.Endpoints().PostgresURL,
			"--witness", "topic:"+chain.CheckpointTopic, "--witness", "file:"+witnessDir())
		if err == nil || !strings.Contains(out, fmt.Sprintf("TAMPERED at position %d", cut+1)) ||
			!strings.Contains(out, fmt.Sprintf("topic:%s vouches for %d rows", chain.CheckpointTopic, head)) {
			t.Fatalf("goplt audit verify: %v\n%s", err, out)
		}
		t.Log(out)
	})

	t.Run("rewritten with recomputed hashes", func(t *testing.T) {
		conn := copyLog(t, "audit_witness_rewrite")
		trim(t, conn, head)
		mid := cut
		if _, err := conn.Exec(ctx, `DELETE FROM checkpoints WHERE pos >= $1`, mid); err != nil {
			t.Fatal(err)
		}
		rewrite(t, conn, mid)
		if res, err := chain.Verify(ctx, conn, pub); err != nil || !res.OK {
			t.Fatalf("the rewrite should pass the database alone: %+v %v", res, err)
		}
		res, err := chain.Verify(ctx, conn, pub, file)
		if err != nil || res.OK || !strings.Contains(res.Problem, "rewritten") || res.FirstBad < mid {
			t.Fatalf("with the witness file: %+v %v", res, err)
		}
	})

	t.Run("witness edited or forged", func(t *testing.T) {
		// Lower the last checkpoint's position, as someone hiding a truncation would.
		edited := t.TempDir()
		b, err := os.ReadFile(filepath.Join(witnessDir(), chain.WitnessFile))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		last := &lines[len(lines)-1]
		*last = strings.Replace(*last, fmt.Sprintf(`"pos":%d,`, head), fmt.Sprintf(`"pos":%d,`, cut), 1)
		if err := os.WriteFile(filepath.Join(edited, chain.WitnessFile), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// A checkpoint signed without audit's key.
		forged := t.TempDir()
		_, other, _ := ed25519.GenerateKey(nil)
		c := chain.Checkpoint{Pos: cut, Hash: make([]byte, 32), SignedAt: time.Now().UTC(), KeyID: audit.KeyID(other.Public().(ed25519.PublicKey))}
		c.Signature = ed25519.Sign(other, []byte("whatever a forger signs"))
		if err := chain.AppendWitness(forged, &c); err != nil {
			t.Fatal(err)
		}
		conn := copyLog(t, "audit_witness_intact")
		trim(t, conn, head)
		for name, dir := range map[string]string{"an edited witness file": edited, "a forged checkpoint": forged} {
			res, err := chain.Verify(ctx, conn, pub, chain.ReadWitnessDir(dir))
			if err != nil || res.OK || !strings.Contains(res.Problem, "invalid signature") {
				t.Errorf("%s: %+v %v", name, res, err)
			}
		}
	})

	t.Run("only audit writes the checkpoint topic", func(t *testing.T) {
		set, err := brokeracl.Load(filepath.Join(stack.Root, brokeracl.LocalFile))
		if err != nil {
			t.Fatal(err)
		}
		b := bus
		b.ACLs = set
		_, err = b.Publish(ctx, "identity", chain.CheckpointTopic, "forged-checkpoint", []byte(`{"version":1}`))
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("identity publishes a checkpoint: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	})

	t.Run("the normal path", func(t *testing.T) {
		out, err := goplt("audit", "verify")
		if err != nil || !strings.Contains(out, "audit log intact") || !strings.Contains(out, "2 witnesses agree") {
			t.Fatalf("goplt audit verify on the live log: %v\n%s", err, out)
		}
		t.Log(out)
		c := group.App("console")
		v, err := auditclient.New(invoke.New(c.HTTPPort, c.DaprAPIToken)).Verify(ctx)
		if err != nil || !v.OK || len(v.Witnesses) != 2 || v.Witnesses[1].Pos < head {
			t.Fatalf("API verify: %+v %v", v, err)
		}
	})

	t.Run("the remote witness", func(t *testing.T) {
		out, err := goplt("audit", "verify", "--witness", remote.URL)
		if err != nil || !strings.Contains(out, fmt.Sprintf("%s vouches for %d rows", remote.URL, head)) {
			t.Fatalf("goplt audit verify against the remote witness: %v\n%s", err, out)
		}
		out, err = goplt("audit", "verify", "--schema", "audit_witness_cut", "--database-url", stack.Endpoints().PostgresURL, "--witness", remote.URL)
		if err == nil || !strings.Contains(out, fmt.Sprintf("TAMPERED at position %d", cut+1)) {
			t.Fatalf("the remote witness on the cut log: %v\n%s", err, out)
		}
	})

	t.Run("a witness that cannot be read", func(t *testing.T) {
		out, err := goplt("audit", "verify", "--witness", "file:"+filepath.Join(t.TempDir(), "nothing-here"))
		if err == nil || !strings.Contains(out, "NOT VERIFIED") || !strings.Contains(out, "cannot be read") {
			t.Fatalf("an unreadable witness: %v\n%s", err, out)
		}
	})
}

// rewrite changes row from's actor and recomputes every hash from there to the head, as an
// attacker who knows the hashing (it is no secret) would.
func rewrite(t *testing.T, conn *pgx.Conn, from int64) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT pos, event_id, topic, source, actor, action, resource, outcome, occurred_at, recorded_at, payload, prev_hash
		FROM log WHERE pos >= $1 ORDER BY pos`, from)
	if err != nil {
		t.Fatal(err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (chain.Entry, error) {
		var e chain.Entry
		err := r.Scan(&e.Pos, &e.EventID, &e.Topic, &e.Source, &e.Actor, &e.Action, &e.Resource, &e.Outcome, &e.OccurredAt, &e.RecordedAt, &e.Payload, &e.PrevHash)
		return e, err
	})
	if err != nil {
		t.Fatal(err)
	}
	prev := es[0].PrevHash
	es[0].Actor = "user:someone-else"
	for _, e := range es {
		h := e.Sum(prev)
		if _, err := conn.Exec(ctx, `UPDATE log SET actor = $2, prev_hash = $3, hash = $4 WHERE pos = $1`, e.Pos, e.Actor, prev, h); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
}
