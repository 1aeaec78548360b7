package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	iss = "goplt-auth"
	aud = "goplt"
)

func fixture(t testing.TB) (Key, *Verifier, Signer) {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Issuer: iss, Audience: aud, Keys: StaticKeys{k.ID: k.Public()}}
	return k, v, Signer{Issuer: iss, Audience: aud, TTL: 5 * time.Minute}
}

func codeOf(err error) string {
	var te *Error
	if errors.As(err, &te) {
		return te.Code
	}
	return "(not a token error: " + err.Error() + ")"
}

func TestSignVerify(t *testing.T) {
	k, v, s := fixture(t)
	raw, issued, err := s.Sign(k, Grant{Subject: "user-1", SessionID: "sess-1", Roles: []string{"blog.editor"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-1" || c.SessionID != "sess-1" || len(c.Roles) != 1 || c.ID != issued.ID || c.ID == "" {
		t.Fatalf("claims = %+v", c)
	}
	head := strings.Split(raw, ".")[0]
	hb, _ := base64.RawURLEncoding.DecodeString(head)
	for _, want := range []string{`"alg":"EdDSA"`, `"kid":"` + k.ID + `"`, `"typ":"at+jwt"`} {
		if !strings.Contains(string(hb), want) {
			t.Errorf("header %s lacks %s", hb, want)
		}
	}
}

// forge builds a token with the given header and claims, signed by method with key.
func forge(t *testing.T, method jwt.SigningMethod, header map[string]any, claims jwt.Claims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestHostileTokens(t *testing.T) {
	k, v, s := fixture(t)
	now := time.Now().Truncate(time.Second)
	good := func() *Claims {
		return &Claims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: iss, Audience: jwt.ClaimStrings{aud}, Subject: "user-1", ID: "j1",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		}, SessionID: "s1", Roles: []string{"identity.admin"}}
	}
	hdr := map[string]any{"kid": k.ID, "typ": Type}
	other, _ := NewKey()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid, _, _ := s.Sign(k, Grant{Subject: "user-1", SessionID: "s1"})
	parts := strings.Split(valid, ".")

	with := func(f func(c *Claims)) *Claims { c := good(); f(c); return c }
	cases := []struct {
		name, raw, code string
	}{
		{"empty", "", CodeMissing},
		{"garbage", "not.a.jwt", CodeMalformed},
		{"two parts", parts[0] + "." + parts[1], CodeMalformed},
		{"oversize", strings.Repeat("a", MaxSize+1), CodeTooLarge},
		{"1 MB", strings.Repeat("a", 1<<20), CodeTooLarge},
		{"alg none", forge(t, jwt.SigningMethodNone, hdr, good(), jwt.UnsafeAllowNoneSignatureType), CodeAlgorithm},
		{"alg none, empty signature", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"` + k.ID + `"}`))
			return h + "." + parts[1] + "."
		}(), CodeAlgorithm},
		// HS/RS confusion: HMAC keyed with the public key's bytes.
		{"HS256 with the public key as secret", forge(t, jwt.SigningMethodHS256, hdr, good(), []byte(k.Public())), CodeAlgorithm},
		{"RS256", forge(t, jwt.SigningMethodRS256, hdr, good(), rsaKey), CodeAlgorithm},
		{"ES256", forge(t, jwt.SigningMethodES256, hdr, good(), ecKey), CodeAlgorithm},
		{"signed by another key under our kid", forge(t, jwt.SigningMethodEdDSA, hdr, good(), other.Private), CodeSignature},
		{"jku pointing at the attacker's keys", forge(t, jwt.SigningMethodEdDSA, map[string]any{"kid": other.ID, "typ": Type, "jku": "https://evil.example/jwks.json"}, good(), other.Private), CodeUnknownKey},
		{"embedded jwk header", forge(t, jwt.SigningMethodEdDSA, map[string]any{"kid": k.ID, "typ": Type, "jwk": PublicJWK(other)}, good(), other.Private), CodeSignature},
		{"x5u header", forge(t, jwt.SigningMethodEdDSA, map[string]any{"kid": other.ID, "typ": Type, "x5u": "https://evil.example/cert"}, good(), other.Private), CodeUnknownKey},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, map[string]any{"typ": Type}, good(), k.Private), CodeUnknownKey},
		{"wrong typ", forge(t, jwt.SigningMethodEdDSA, map[string]any{"kid": k.ID, "typ": "JWT"}, good(), k.Private), CodeType},
		{"no typ", forge(t, jwt.SigningMethodEdDSA, map[string]any{"kid": k.ID}, good(), k.Private), CodeType},
		{"payload tampered", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + parts[2], CodeSignature},
		{"signature stripped", parts[0] + "." + parts[1] + ".", CodeSignature},
		{"wrong issuer", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.Issuer = "evil" }), k.Private), CodeIssuer},
		{"wrong audience", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }), k.Private), CodeAudience},
		{"expired", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second)) }), k.Private), CodeExpired},
		{"no exp", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.ExpiresAt = nil }), k.Private), CodeClaims},
		{"not yet valid", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), k.Private), CodeNotYetValid},
		{"issued in the future", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), k.Private), CodeNotYetValid},
		{"no session", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.SessionID = "" }), k.Private), CodeClaims},
		{"no subject", forge(t, jwt.SigningMethodEdDSA, hdr, with(func(c *Claims) { c.Subject = "" }), k.Private), CodeClaims},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.raw)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if got := codeOf(err); got != tc.code {
				t.Fatalf("code = %s, want %s (%v)", got, tc.code, err)
			}
		})
	}
	// Control: the same forging path with the right key and claims verifies, so the cases
	// above fail for the reason they name.
	if _, err := v.Verify(context.Background(), forge(t, jwt.SigningMethodEdDSA, hdr, good(), k.Private)); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

// fakeRevocations is a fixed list; nil is a list that cannot be fetched.
type fakeRevocations map[string]bool

func (f fakeRevocations) Check(_ context.Context, c *Claims) error {
	if f == nil {
		return fail(CodeKeysDown, errors.New("down"))
	}
	var r Revocations
	for sid := range f {
		r.Sessions = append(r.Sessions, sid)
	}
	return newIndex(r).check(c)
}

func TestStrictRevocation(t *testing.T) {
	k, v, s := fixture(t)
	raw, _, _ := s.Sign(k, Grant{Subject: "u", SessionID: "s-revoked"})
	v.Revocations = fakeRevocations{"s-revoked": true}
	if _, err := v.Verify(context.Background(), raw); codeOf(err) != CodeRevoked {
		t.Fatalf("revoked session: %v", err)
	}
	v.Revocations = fakeRevocations(nil)
	if _, err := v.Verify(context.Background(), raw); codeOf(err) != CodeKeysDown {
		t.Fatalf("revocation list down must fail closed: %v", err)
	}
}

func TestJWKSCacheRotationAndRateLimit(t *testing.T) {
	k1, _ := NewKey()
	k2, _ := NewKey()
	published := JWKS{Keys: []JWK{PublicJWK(k1)}}
	var fetches atomic.Int32
	c := NewJWKSCache(func(context.Context) (JWKS, error) { fetches.Add(1); return published, nil }, time.Hour, time.Hour)
	ctx := context.Background()
	if _, err := c.PublicKey(ctx, k1.ID); err != nil {
		t.Fatal(err)
	}
	// Rotation: a new kid triggers one refetch, which finds it.
	published = JWKS{Keys: []JWK{PublicJWK(k1), PublicJWK(k2)}}
	if _, err := c.PublicKey(ctx, k2.ID); err != nil {
		t.Fatalf("rotated key not found after refresh: %v", err)
	}
	// Made-up kids: refused without fetching again within the interval.
	before := fetches.Load()
	for range 100 {
		if _, err := c.PublicKey(ctx, "made-up"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := fetches.Load() - before; n > 1 {
		t.Fatalf("%d fetches for 100 unknown kids, want at most 1", n)
	}
	// Known keys keep working from the cache.
	if _, err := c.PublicKey(ctx, k1.ID); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSSkipsForeignKeys(t *testing.T) {
	k, _ := NewKey()
	set := JWKS{Keys: []JWK{
		{Kty: "RSA", Kid: "rsa", X: "AAAA"},
		{Kty: "OKP", Crv: "X25519", Kid: "x", X: PublicJWK(k).X},
		{Kty: "OKP", Crv: "Ed25519", Kid: "short", X: "AAAA"},
		{Kty: "OKP", Crv: "Ed25519", Kid: "enc", X: PublicJWK(k).X, Use: "enc"},
		PublicJWK(k),
	}}
	keys := set.PublicKeys()
	if len(keys) != 1 || keys[k.ID] == nil {
		t.Fatalf("keys = %v, want only %s", keys, k.ID)
	}
}

func BenchmarkSign(b *testing.B) {
	k, _, s := fixture(b)
	for b.Loop() {
		if _, _, err := s.Sign(k, Grant{Subject: "user-1", SessionID: "sess", Roles: []string{"blog.editor", "identity.user"}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k, v, s := fixture(b)
	raw, _, _ := s.Sign(k, Grant{Subject: "user-1", SessionID: "sess", Roles: []string{"blog.editor", "identity.user"}})
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyJWKSCached is Verify with keys from a JWKS cache, as the gateway runs it:
// after the first fetch, no call leaves the process.
func BenchmarkVerifyJWKSCached(b *testing.B) {
	k, v, s := fixture(b)
	set := JWKS{Keys: []JWK{PublicJWK(k)}}
	v.Keys = NewJWKSCache(func(context.Context) (JWKS, error) { return set, nil }, time.Hour, time.Second)
	raw, _, _ := s.Sign(k, Grant{Subject: "user-1", SessionID: "sess", Roles: []string{"blog.editor", "identity.user"}})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestKeySetRotation(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := NewKeySet(t0)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.Signing()
	added, dropped, err := s.Rotate(t0.Add(time.Hour), 15*time.Minute)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("rotate: %v dropped=%v", err, dropped)
	}
	b, _ := json.Marshal(s)
	s2, err := ParseKeySet(b)
	if err != nil {
		t.Fatal(err)
	}
	signing, _ := s2.Signing()
	if signing.ID != added.ID || signing.ID == first.ID {
		t.Fatalf("signing key = %s, want the new %s", signing.ID, added.ID)
	}
	if n := len(s2.JWKS().Keys); n != 2 {
		t.Fatalf("JWKS has %d keys during the overlap, want 2", n)
	}
	// A second rotation after the retention drops the first key.
	_, dropped, _ = s2.Rotate(t0.Add(2*time.Hour), 15*time.Minute)
	if len(dropped) != 1 || dropped[0] != first.ID {
		t.Fatalf("dropped = %v, want [%s]", dropped, first.ID)
	}
	for _, bad := range []string{`{`, `{"keys":[]}`, `{"keys":[{"kid":"a","seed":"AAAA"}]}`} {
		if _, err := ParseKeySet([]byte(bad)); err == nil {
			t.Errorf("ParseKeySet(%s) accepted", bad)
		}
	}
}

func TestCachedVerifier(t *testing.T) {
	k, v, s := fixture(t)
	now := time.Now()
	v.Now = func() time.Time { return now }
	s.Now = v.Now
	revoked := fakeRevocations{}
	v.Revocations = revoked
	cv := v.Cached(100)
	raw, _, _ := s.Sign(k, Grant{Subject: "u", SessionID: "s1"})
	ctx := context.Background()
	for range 3 {
		if _, err := cv.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	// Revocation still applies to a cached token.
	revoked["s1"] = true
	if _, err := cv.Verify(ctx, raw); codeOf(err) != CodeRevoked {
		t.Fatalf("revoked cached token: %v", err)
	}
	delete(revoked, "s1")
	// Expiry applies too: past exp the token is verified again, and fails.
	now = now.Add(10 * time.Minute)
	if _, err := cv.Verify(ctx, raw); codeOf(err) != CodeExpired {
		t.Fatalf("expired cached token: %v", err)
	}
	// Failures are not cached: a forged token fails every time.
	other, _ := NewKey()
	forged, _, _ := s.Sign(Key{ID: k.ID, Private: other.Private}, Grant{Subject: "u", SessionID: "s1"})
	for range 2 {
		if _, err := cv.Verify(ctx, forged); codeOf(err) != CodeSignature {
			t.Fatalf("forged: %v", err)
		}
	}
}

func BenchmarkCachedVerify(b *testing.B) {
	k, v, s := fixture(b)
	raw, _, _ := s.Sign(k, Grant{Subject: "user-1", SessionID: "sess", Roles: []string{"blog.editor"}})
	cv := v.Cached(1000)
	ctx := context.Background()
	for b.Loop() {
		if _, err := cv.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRevocationListMakesOlderVersionsStale(t *testing.T) {
	k, v, s := fixture(t)
	old, _, _ := s.Sign(k, Grant{Subject: "u1", SessionID: "s1", Version: 3})
	current, _, _ := s.Sign(k, Grant{Subject: "u1", SessionID: "s2", Version: 4})
	other, _, _ := s.Sign(k, Grant{Subject: "u2", SessionID: "s3", Version: 1})
	noVersion, _, _ := s.Sign(k, Grant{Subject: "u1", SessionID: "s4"})
	list := Revocations{Sessions: []string{"s3"}, Subjects: []SubjectCutoff{{Subject: "u1", MinVersion: 4}, {Subject: "u1", MinVersion: 2}}}
	fetches := 0
	v.Revocations = NewRevocationCache(func(context.Context) (Revocations, error) { fetches++; return list, nil }, time.Minute)
	ctx := context.Background()
	for _, c := range []struct {
		name, raw, code string
	}{
		{"below the subject's minimum version", old, CodeStale},
		{"without a version (issued before versions existed)", noVersion, CodeStale},
		{"at the minimum version", current, ""},
		{"revoked session", other, CodeRevoked},
	} {
		got := ""
		if _, err := v.Verify(ctx, c.raw); err != nil {
			got = codeOf(err)
		}
		if got != c.code {
			t.Errorf("%s: got code %q, want %q", c.name, got, c.code)
		}
	}
	if fetches != 1 {
		t.Errorf("fetched the list %d times within its max age, want 1", fetches)
	}
	v.Revocations = NewRevocationCache(func(context.Context) (Revocations, error) { return Revocations{}, errors.New("down") }, time.Minute)
	if _, err := v.Verify(ctx, current); codeOf(err) != CodeKeysDown {
		t.Errorf("unreachable list must fail closed: %v", err)
	}
}

// BenchmarkStrictCachedVerify is the gateway's verifier: the verified-token cache and the
// revocation check against a large list (10,000 ended sessions and 10,000 stale subjects),
// which the cache refetches every 5 s as the gateway does.
func BenchmarkStrictCachedVerify(b *testing.B) {
	k, v, s := fixture(b)
	raw, _, _ := s.Sign(k, Grant{Subject: "user-1", SessionID: "sess", Roles: []string{"blog.editor"}, Version: 7})
	var list Revocations
	for i := range 10000 {
		list.Sessions = append(list.Sessions, fmt.Sprintf("session-%d", i))
		list.Subjects = append(list.Subjects, SubjectCutoff{Subject: fmt.Sprintf("user-%d", i+2), MinVersion: 3})
	}
	v.Revocations = NewRevocationCache(func(context.Context) (Revocations, error) { return list, nil }, 5*time.Second)
	cv := v.Cached(1000)
	ctx := context.Background()
	for b.Loop() {
		if _, err := cv.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
