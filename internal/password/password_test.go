package password

import (
	"strings"
	"testing"
	"time"
)

// cheap keeps unit tests fast; the OWASP setting is exercised by the benchmark.
var cheap = Hasher{P: Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}

func TestHashVerify(t *testing.T) {
	h, err := cheap.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not record its parameters", h)
	}
	ok, rehash, err := cheap.Verify("correct horse battery", h)
	if err != nil || !ok || rehash {
		t.Fatalf("right password: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	ok, _, err = cheap.Verify("correct horse batterx", h)
	if err != nil || ok {
		t.Fatalf("wrong password: ok=%v err=%v", ok, err)
	}
	h2, _ := cheap.Hash("correct horse battery")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestRehashWhenParametersRise(t *testing.T) {
	h, _ := cheap.Hash("correct horse battery")
	stronger := Hasher{P: cheap.P}
	stronger.P.Time = 2
	ok, rehash, err := stronger.Verify("correct horse battery", h)
	if err != nil || !ok || !rehash {
		t.Fatalf("ok=%v rehash=%v err=%v; want ok and rehash", ok, rehash, err)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want error
	}{
		{"short", ErrTooShort},
		{"twelve chars", nil},
		{strings.Repeat("é", 12), nil}, // 12 characters, 24 bytes
		{strings.Repeat("a", MaxBytes+1), ErrTooLong},
		{strings.Repeat("a", 1<<20), ErrTooLong},
		{"has a\x00NUL inside", ErrEncoding},
		{"bad utf8 \xff\xfe here", ErrEncoding},
	} {
		if got := Check(tc.pw); got != tc.want {
			t.Errorf("Check(%.20q) = %v, want %v", tc.pw, got, tc.want)
		}
	}
}

func TestMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5",
	} {
		if _, _, err := cheap.Verify("x", h); err == nil {
			t.Errorf("Verify accepted malformed hash %q", h)
		}
	}
}

func TestOversizeIsRejectedBeforeHashing(t *testing.T) {
	// With a 1 GiB memory setting, hashing would take seconds and a gigabyte: the bound must
	// refuse first.
	huge := Hasher{P: Params{Memory: 1 << 20, Time: 20, Threads: 1, SaltLen: 16, KeyLen: 32}}
	if _, err := huge.Hash(strings.Repeat("a", 1<<20)); err != ErrTooLong {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

func BenchmarkHashOWASP(b *testing.B) {
	h := Hasher{P: OWASP}
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// With slots, a hash waits for a free one: while the only slot is taken, Hash does not run;
// once it is free, Hash finishes.
func TestSlotsBoundConcurrentHashes(t *testing.T) {
	h := NewHasher(Params{Memory: 8 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1)
	h.Slots <- struct{}{} // someone else's hash holds the slot
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash("correct horse battery staple")
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("Hash ran although no slot was free")
	case <-time.After(200 * time.Millisecond):
	}
	<-h.Slots
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Hash did not run once the slot was free")
	}
	if len(h.Slots) != 0 {
		t.Error("Hash kept its slot")
	}
}
