package chain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func signed(t *testing.T, key ed25519.PrivateKey, pos int64, hash []byte) Checkpoint {
	t.Helper()
	c := Checkpoint{Pos: pos, Hash: hash, SignedAt: time.Now().UTC().Truncate(time.Microsecond), KeyID: "k"}
	c.Signature = ed25519.Sign(key, c.message())
	return c
}

func hashOf(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// A witness file round-trips its checkpoints; a line edited by hand is either malformed or
// fails its signature.
func TestWitnessFileRoundTrip(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	if err := CreateWitness(dir); err != nil {
		t.Fatal(err)
	}
	if w := ReadWitnessDir(dir); w.Err != nil || len(w.Checkpoints) != 0 {
		t.Fatalf("a fresh witness: %+v", w)
	}
	for pos := int64(1); pos <= 3; pos++ {
		c := signed(t, key, pos, hashOf(strings.Repeat("x", int(pos))))
		if err := AppendWitness(dir, &c); err != nil {
			t.Fatal(err)
		}
	}
	w := ReadWitnessDir(dir)
	if w.Err != nil || len(w.Malformed) != 0 || len(w.Checkpoints) != 3 {
		t.Fatalf("read back: %+v", w)
	}
	for _, c := range w.Checkpoints {
		if !c.Valid(pub) {
			t.Fatalf("checkpoint %d does not verify after a round trip", c.Pos)
		}
	}
	path := filepath.Join(dir, WitnessFile)
	b, _ := os.ReadFile(path)
	edited := strings.Replace(string(b), `"pos":3`, `"pos":30`, 1) + "not json\n"
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	w = ReadWitnessDir(dir)
	if len(w.Malformed) != 1 || !strings.Contains(w.Malformed[0], "line 4") {
		t.Fatalf("malformed line not reported: %+v", w.Malformed)
	}
	if w.Checkpoints[2].Pos != 30 || w.Checkpoints[2].Valid(pub) {
		t.Fatal("an edited position still verifies")
	}
	if w := ReadWitnessDir(filepath.Join(dir, "gone")); w.Err == nil {
		t.Fatal("a missing witness file reads without an error")
	}
}

// judge says which witness vouches for what, and names truncation, rewriting, forgery, an
// altered witness and an unreadable one.
func TestJudge(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	rows := map[int64][]byte{5: hashOf("row5"), 9: hashOf("row9")}
	const n = 9
	cases := []struct {
		name    string
		w       Witnessed
		pos     int64
		bad     int64
		problem string
	}{
		{"agrees", Witnessed{Name: "file:a", Checkpoints: []Checkpoint{signed(t, key, 5, rows[5]), signed(t, key, 9, rows[9])}}, 9, 0, ""},
		{"truncated", Witnessed{Name: "file:a", Checkpoints: []Checkpoint{signed(t, key, 5, rows[5]), signed(t, key, 12, hashOf("row12"))}}, 12, 10, "vouches for 12 rows"},
		{"rewritten", Witnessed{Name: "file:a", Checkpoints: []Checkpoint{signed(t, key, 5, hashOf("other"))}}, 5, 5, "rewritten"},
		{"forged", Witnessed{Name: "file:a", Checkpoints: []Checkpoint{signed(t, other, 12, hashOf("row12"))}}, 0, 12, "invalid signature"},
		{"malformed", Witnessed{Name: "file:a", Malformed: []string{"line 2: bad"}}, 0, 0, "not a checkpoint"},
		{"unreadable", Witnessed{Name: "file:a", Err: os.ErrNotExist}, 0, 0, "cannot be read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, bad := judge(tc.w, pub, n, rows)
			if rep.Pos != tc.pos || bad != tc.bad || (tc.problem == "") != (rep.Problem == "") || !strings.Contains(rep.Problem, tc.problem) {
				t.Fatalf("judge = %+v, first bad %d; want pos %d, first bad %d, a problem about %q", rep, bad, tc.pos, tc.bad, tc.problem)
			}
		})
	}
}
