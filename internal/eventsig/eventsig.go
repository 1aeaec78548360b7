// Package eventsig makes events authentic end to end, whatever the broker allows: the
// publishing kernel signs each CloudEvent with its app's Ed25519 key (id, source, type, topic,
// time and the canonical form of the data), and subscribers verify the signature against the
// source app's public keys before handling the event. Keys live in the secret store, one key
// set per app (the newest unretired key signs, every key in the set verifies, as with the
// access-token keys), and the public halves of all apps in one secret, as a JWKS per app.
package eventsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/goplt/goplt/internal/token"
)

// CloudEvent extension attributes that carry the signature.
const (
	SignatureAttr = "gopltsig" // base64url (no padding) of the Ed25519 signature
	KeyIDAttr     = "gopltkid" // kid of the signing key in the source app's key set
)

// Secret names and fields in the secret store.
const (
	// PublicKeysSecret has one field per app: the JWKS of its event-signing keys.
	PublicKeysSecret = "event-keys"
	// KeySetField is the field of an app's signing secret that holds its token.KeySet.
	KeySetField = "keyset"
)

// SigningSecret is the secret holding app's private event-signing key set.
func SigningSecret(app string) string { return "event-signing-" + app }

// Errors a verification returns. A verifier that could not fetch keys returns another error
// (a transient one: the event should be retried, not rejected).
var (
	ErrUnsigned     = errors.New("event is not signed")
	ErrUnknownKey   = errors.New("event is signed with a key its source does not have")
	ErrBadSignature = errors.New("event signature does not verify")
)

// Envelope is what a signature covers.
type Envelope struct {
	ID, Source, Type, Topic, Time string
	Data                          []byte // JSON; covered in canonical form
	// Canonical is Data as Canonical returns it, when the caller has it already (a subscriber
	// keeps it for its handlers): Data is then not parsed again.
	Canonical string
}

// message is the signed byte string: a JSON array of the fields, so boundaries are
// unambiguous, with the data canonicalised because the sidecar may re-encode the envelope.
func message(e Envelope) ([]byte, error) {
	data := e.Canonical
	if data == "" {
		var err error
		if data, err = Canonical(e.Data); err != nil {
			return nil, fmt.Errorf("event %s data: %w", e.ID, err)
		}
	}
	return json.Marshal([]string{"goplt-event-v1", e.ID, e.Source, e.Type, e.Topic, e.Time, data})
}

// Sign returns the signature of e by key, encoded for the SignatureAttr attribute.
func Sign(key token.Key, e Envelope) (string, error) {
	msg, err := message(e)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(key.Private, msg)), nil
}

// PublicKeys finds an app's public key by kid.
type PublicKeys interface {
	PublicKey(ctx context.Context, app, kid string) (ed25519.PublicKey, error)
}

// Verify checks that sig (by the key kid) signs e and that the key belongs to e.Source. An
// unknown kid is ErrUnknownKey only if keys says so (token.ErrUnknownKey); other errors are
// returned as they are, to be retried.
func Verify(ctx context.Context, keys PublicKeys, e Envelope, kid, sig string) error {
	if sig == "" || kid == "" {
		return ErrUnsigned
	}
	pub, err := keys.PublicKey(ctx, e.Source, kid)
	if errors.Is(err, token.ErrUnknownKey) {
		return fmt.Errorf("%w (source %q, kid %q)", ErrUnknownKey, e.Source, kid)
	}
	if err != nil {
		return fmt.Errorf("event keys of %s: %w", e.Source, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	msg, err := message(e)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if !ed25519.Verify(pub, msg, raw) {
		return ErrBadSignature
	}
	return nil
}

// Canonical returns payload (any JSON) re-encoded canonically: object keys sorted, numbers
// kept as written, no insignificant whitespace.
func Canonical(payload []byte) (string, error) {
	v, err := Decode(payload)
	if err != nil {
		return "", err
	}
	return CanonicalOf(v)
}

// CanonicalOf is Canonical for a payload Decode has parsed already.
func CanonicalOf(v any) (string, error) {
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Decode parses one JSON value with numbers kept as written (json.Number): the form
// Canonical re-encodes and JSON Schema validation takes (contracts.Checker.IncomingValue).
func Decode(payload []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("payload is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("payload has trailing data")
	}
	return v, nil
}
