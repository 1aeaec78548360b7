package eventsig

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/token"
)

func keys(t testing.TB, sets map[string]token.JWKS, fetches *int) *KeyCache {
	t.Helper()
	return NewKeyCache(func(context.Context) (map[string]string, error) {
		*fetches++
		out := map[string]string{}
		for app, s := range sets {
			b, _ := json.Marshal(s)
			out[app] = string(b)
		}
		return out, nil
	}, time.Hour, time.Hour)
}

func TestSignAndVerify(t *testing.T) {
	ann, _ := token.NewKey()
	bob, _ := token.NewKey()
	var fetches int
	pub := keys(t, map[string]token.JWKS{"ann": {Keys: []token.JWK{token.PublicJWK(ann)}}, "bob": {Keys: []token.JWK{token.PublicJWK(bob)}}}, &fetches)
	e := Envelope{ID: "1", Source: "ann", Type: "ann.thing.made", Topic: "ann.thing.made", Time: "2026-12-02T10:00:00Z", Data: []byte(`{"b":[1,2.5],"a":"x"}`)}
	sig, err := Sign(ann, e)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Verify(ctx, pub, e, ann.ID, sig); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	reencoded := e
	reencoded.Data = []byte(`{ "a" : "x", "b" : [1, 2.5] }`)
	if err := Verify(ctx, pub, reencoded, ann.ID, sig); err != nil {
		t.Errorf("re-encoded data: %v", err)
	}
	// A caller's canonical payload is what is checked (Data is not parsed again).
	withCanonical := e
	if withCanonical.Canonical, err = Canonical(e.Data); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, pub, withCanonical, ann.ID, sig); err != nil {
		t.Errorf("with the canonical payload: %v", err)
	}
	if withCanonical.Canonical, err = Canonical([]byte(`{"a":"y","b":[1,2.5]}`)); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, pub, withCanonical, ann.ID, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other canonical payload: %v, want %v", err, ErrBadSignature)
	}
	if _, err := Decode([]byte(`{"a":1} {}`)); err == nil {
		t.Error("trailing data decoded")
	}
	for name, c := range map[string]struct {
		e        Envelope
		kid, sig string
		want     error
	}{
		"unsigned":      {e, "", "", ErrUnsigned},
		"other id":      {func() Envelope { x := e; x.ID = "2"; return x }(), ann.ID, sig, ErrBadSignature},
		"other topic":   {func() Envelope { x := e; x.Topic = "bob.thing.made"; return x }(), ann.ID, sig, ErrBadSignature},
		"other time":    {func() Envelope { x := e; x.Time = "2026-12-02T10:00:01Z"; return x }(), ann.ID, sig, ErrBadSignature},
		"other data":    {func() Envelope { x := e; x.Data = []byte(`{"a":"y","b":[1,2.5]}`); return x }(), ann.ID, sig, ErrBadSignature},
		"other source":  {func() Envelope { x := e; x.Source = "bob"; return x }(), ann.ID, sig, ErrUnknownKey},
		"unknown app":   {func() Envelope { x := e; x.Source = "mallory"; return x }(), ann.ID, sig, ErrUnknownKey},
		"garbage sig":   {e, ann.ID, "!!", ErrBadSignature},
		"bob signs ann": {e, bob.ID, sig, ErrUnknownKey},
	} {
		if err := Verify(ctx, pub, c.e, c.kid, c.sig); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// Unknown keys refetch at most once per minRefresh (an hour here): one fetch at the start,
	// one for the first unknown kid, none after.
	if fetches != 2 {
		t.Errorf("%d fetches of the public keys, want 2", fetches)
	}
}

// A rotation: the new key verifies once a subscriber refetches; the retired one still does.
func TestRotationIsPickedUp(t *testing.T) {
	old, _ := token.NewKey()
	sets := map[string]token.JWKS{"ann": {Keys: []token.JWK{token.PublicJWK(old)}}}
	var fetches int
	pub := NewKeyCache(func(context.Context) (map[string]string, error) {
		fetches++
		b, _ := json.Marshal(sets["ann"])
		return map[string]string{"ann": string(b)}, nil
	}, time.Hour, time.Nanosecond)
	e := Envelope{ID: "1", Source: "ann", Type: "t", Topic: "t", Time: "now", Data: []byte(`{}`)}
	sig, _ := Sign(old, e)
	if err := Verify(context.Background(), pub, e, old.ID, sig); err != nil {
		t.Fatal(err)
	}
	newer, _ := token.NewKey()
	sets["ann"] = token.JWKS{Keys: []token.JWK{token.PublicJWK(old), token.PublicJWK(newer)}}
	sig2, _ := Sign(newer, e)
	if err := Verify(context.Background(), pub, e, newer.ID, sig2); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
	if err := Verify(context.Background(), pub, e, old.ID, sig); err != nil {
		t.Errorf("retired key after rotation: %v", err)
	}
}

func TestKeyFetchFailureIsNotARejection(t *testing.T) {
	pub := NewKeyCache(func(context.Context) (map[string]string, error) { return nil, errors.New("sidecar down") }, time.Hour, time.Hour)
	k, _ := token.NewKey()
	e := Envelope{ID: "1", Source: "ann", Data: []byte(`{}`)}
	sig, _ := Sign(k, e)
	err := Verify(context.Background(), pub, e, k.ID, sig)
	if err == nil || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrBadSignature) {
		t.Errorf("fetch failure gave %v, want a retryable error", err)
	}
}

// The cost per event the goal names (sign + verify <= 50 us), for the benchmark report.
func BenchmarkSignVerify(b *testing.B) {
	k, _ := token.NewKey()
	var fetches int
	pub := keys(b, map[string]token.JWKS{"auth": {Keys: []token.JWK{token.PublicJWK(k)}}}, &fetches)
	e := Envelope{ID: "0123456789abcdef0123456789abcdef", Source: "auth", Type: "auth.login.failed", Topic: "auth.login.failed",
		Time: "2026-12-02T10:00:00.123456789Z", Data: []byte(`{"version":1,"email":"bench@example.com","ip":"192.0.2.1","reason":"invalid_credentials","at":"2026-12-02T10:00:00.123456Z"}`)}
	ctx := context.Background()
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := Sign(k, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	sig, _ := Sign(k, e)
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if err := Verify(ctx, pub, e, k.ID, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("canonical-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := Canonical(e.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Canonical sorts keys, keeps numbers as written and drops whitespace (audit hashes this form
// too); anything but one JSON value is refused.
func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		`{"b":1,"a":{"d":[1,2.50,"x"],"c":null}}`: `{"a":{"c":null,"d":[1,2.50,"x"]},"b":1}`,
		" { \"x\" : 12345678901234567890 } ":      `{"x":12345678901234567890}`,
	} {
		got, err := Canonical([]byte(in))
		if err != nil || got != want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `{`, `{} {}`} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) accepted", bad)
		}
	}
}
