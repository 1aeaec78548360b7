// Package token issues and verifies goplt access tokens: JWTs signed with Ed25519 (EdDSA),
// typed "at+jwt" (RFC 9068), with kid, iss, aud, sub, exp, iat, nbf, jti, the session (token
// family) id and the subject's roles.
//
// Verification is deliberately narrow: only EdDSA is accepted (so "none", HS256 with the
// public key as secret, and RS/ES tokens all fail), the key comes only from our own key set
// by kid (jku, x5u, jwk and x5c headers are never consulted), the size is bounded before
// parsing, and the signature is checked before any claim is trusted.
package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Type is the JWT "typ" header of access tokens.
const Type = "at+jwt"

// MaxSize bounds an access token in bytes; anything longer is refused unparsed.
const MaxSize = 4096

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	// SessionID is the token family the token belongs to: revoking the session (logout,
	// refresh-token reuse) revokes every access token carrying it.
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
	// Version is the principal's version (identity bumps it when the user's status or roles
	// change) that the token was issued from: a revocation list naming a higher version for
	// the subject makes the token stale.
	Version int64 `json:"ver,omitempty"`
}

// Grant is what an access token says: who, in which session, with which roles, as of which
// version of the principal.
type Grant struct {
	Subject   string
	SessionID string
	Roles     []string
	Version   int64
}

// Key is one signing key.
type Key struct {
	ID      string
	Private ed25519.PrivateKey
}

// Public returns the key's public half.
func (k Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Signer issues access tokens.
type Signer struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	Now      func() time.Time // nil: time.Now
}

// Sign issues a token for g, signed with key.
func (s Signer) Sign(key Key, g Grant) (string, *Claims, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now().Truncate(time.Second)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", nil, fmt.Errorf("token id: %w", err)
	}
	roles := g.Roles
	if roles == nil {
		roles = []string{}
	}
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.Issuer, Subject: g.Subject, Audience: jwt.ClaimStrings{s.Audience},
			ExpiresAt: jwt.NewNumericDate(t.Add(s.TTL)), IssuedAt: jwt.NewNumericDate(t), NotBefore: jwt.NewNumericDate(t),
			ID: base64.RawURLEncoding.EncodeToString(jti),
		},
		SessionID: g.SessionID, Roles: roles, Version: g.Version,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = key.ID
	tok.Header["typ"] = Type
	raw, err := tok.SignedString(key.Private)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return raw, c, nil
}

// Error is a verification failure with a stable code.
type Error struct {
	Code string // e.g. "token_expired"
	Err  error
}

func (e *Error) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Stable failure codes.
const (
	CodeMissing     = "token_missing"
	CodeTooLarge    = "token_too_large"
	CodeMalformed   = "token_malformed"
	CodeAlgorithm   = "token_algorithm"
	CodeType        = "token_type"
	CodeUnknownKey  = "token_unknown_key"
	CodeSignature   = "token_signature"
	CodeExpired     = "token_expired"
	CodeNotYetValid = "token_not_yet_valid"
	CodeIssuer      = "token_issuer"
	CodeAudience    = "token_audience"
	CodeClaims      = "token_claims"
	CodeRevoked     = "token_revoked"
	// CodeStale: the user's status or roles changed after the token was issued; a refresh
	// gives a token with the current roles (or fails, for a disabled or deleted user).
	CodeStale    = "token_stale"
	CodeKeysDown = "token_keys_unavailable"
)

func fail(code string, err error) error { return &Error{Code: code, Err: err} }

// ErrUnknownKey is returned by a KeySource that has no key with the id.
var ErrUnknownKey = errors.New("unknown key id")

// KeySource finds a public key by id.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// Verifier checks access tokens.
type Verifier struct {
	Issuer   string
	Audience string
	Keys     KeySource
	// Revocations, when set, is consulted for every token (strict mode); a failure to
	// consult it fails the verification (fail closed).
	Revocations RevocationSource
	Leeway      time.Duration
	Now         func() time.Time // nil: time.Now
}

// Verify checks raw and returns its claims, or an *Error.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, fail(CodeMissing, errors.New("no token"))
	}
	if len(raw) > MaxSize {
		return nil, fail(CodeTooLarge, fmt.Errorf("token of %d bytes exceeds %d", len(raw), MaxSize))
	}
	if err := checkHeader(raw); err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(v.Issuer), jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(v.Leeway),
		jwt.WithStrictDecoding(),
	}
	if v.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.Now))
	}
	var keyErr error
	c := &Claims{}
	_, err := jwt.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok {
			keyErr = fail(CodeAlgorithm, fmt.Errorf("algorithm %v is not allowed", t.Header["alg"]))
			return nil, keyErr
		}
		if typ, _ := t.Header["typ"].(string); typ != Type {
			keyErr = fail(CodeType, fmt.Errorf("typ %q, want %q", typ, Type))
			return nil, keyErr
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" || len(kid) > 128 {
			keyErr = fail(CodeUnknownKey, errors.New("missing or oversize kid"))
			return nil, keyErr
		}
		pub, err := v.Keys.PublicKey(ctx, kid)
		switch {
		case errors.Is(err, ErrUnknownKey):
			keyErr = fail(CodeUnknownKey, fmt.Errorf("kid %q: %w", kid, err))
			return nil, keyErr
		case err != nil:
			keyErr = fail(CodeKeysDown, err)
			return nil, keyErr
		}
		return pub, nil
	}, opts...)
	if err != nil {
		return nil, classify(err, keyErr)
	}
	if c.Subject == "" || c.SessionID == "" || c.ID == "" || c.NotBefore == nil {
		return nil, fail(CodeClaims, errors.New("sub, sid, jti and nbf are required"))
	}
	if v.Revocations != nil {
		if err := v.Revocations.Check(ctx, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkHeader refuses a token whose header names another algorithm, before any parsing of
// its claims, so the failure says what is wrong.
func checkHeader(raw string) error {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return fail(CodeMalformed, errors.New("not a JWT"))
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return fail(CodeMalformed, fmt.Errorf("header: %w", err))
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return fail(CodeMalformed, fmt.Errorf("header: %w", err))
	}
	if h.Alg != jwt.SigningMethodEdDSA.Alg() {
		return fail(CodeAlgorithm, fmt.Errorf("algorithm %q is not allowed", h.Alg))
	}
	return nil
}

// classify maps the jwt library's errors to stable codes.
func classify(err, keyErr error) error {
	var te *Error
	if errors.As(keyErr, &te) {
		return te
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fail(CodeSignature, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail(CodeAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(CodeExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(CodeNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail(CodeIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(CodeAudience, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return fail(CodeClaims, err)
	default:
		return fail(CodeMalformed, err)
	}
}

// NewKey makes a signing key with a random id.
func NewKey() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	id := make([]byte, 9)
	if _, err := rand.Read(id); err != nil {
		return Key{}, err
	}
	return Key{ID: base64.RawURLEncoding.EncodeToString(id), Private: priv}, nil
}
