// Package password hashes and checks passwords with argon2id, storing each hash in the PHC
// string format with its parameters, so the parameters can be raised later: a hash made with
// weaker ones reports NeedsRehash and is replaced at the next successful login.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// OWASP is the OWASP Password Storage Cheat Sheet's first recommended argon2id setting
// (m=19 MiB, t=2, p=1).
var OWASP = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Length bounds, in characters (MinLen) and bytes (MaxBytes). The upper bound is checked
// before hashing, so an oversize password costs nothing.
const (
	MinLen   = 12
	MaxBytes = 256
)

// Errors returned by Check; the messages are safe to show to users.
var (
	ErrTooShort = fmt.Errorf("password must be at least %d characters", MinLen)
	ErrTooLong  = fmt.Errorf("password must be at most %d bytes", MaxBytes)
	ErrEncoding = errors.New("password must be valid UTF-8 without control characters")
)

// Check validates a new password's length and encoding.
func Check(pw string) error {
	if len(pw) > MaxBytes {
		return ErrTooLong
	}
	if !utf8.ValidString(pw) {
		return ErrEncoding
	}
	for _, r := range pw {
		if r < 0x20 || r == 0x7f {
			return ErrEncoding
		}
	}
	if utf8.RuneCountInString(pw) < MinLen {
		return ErrTooShort
	}
	return nil
}

// Hasher hashes with fixed parameters. Each hash or check holds P.Memory KiB (19 MiB at the
// OWASP setting) while it runs; Slots, when set, bounds how many run at once, so a burst of
// logins queues instead of taking memory without limit. Make one with NewHasher.
type Hasher struct {
	P     Params
	Slots chan struct{}
}

// NewHasher returns a hasher that runs at most concurrent hashes at once (at least one).
func NewHasher(p Params, concurrent int) Hasher {
	return Hasher{P: p, Slots: make(chan struct{}, max(1, concurrent))}
}

// argon2id runs the key derivation inside a slot.
func (h Hasher) argon2id(pw, salt []byte, p Params, keyLen uint32) []byte {
	if h.Slots != nil {
		h.Slots <- struct{}{}
		defer func() { <-h.Slots }()
	}
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, keyLen)
}

// Hash returns the PHC-encoded argon2id hash of pw. It does not call Check.
func (h Hasher) Hash(pw string) (string, error) {
	if len(pw) > MaxBytes {
		return "", ErrTooLong
	}
	salt := make([]byte, h.P.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := h.argon2id([]byte(pw), salt, h.P, h.P.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.P.Memory, h.P.Time, h.P.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded, and whether encoded was made with parameters
// other than h's (so the caller should store a fresh Hash). A malformed hash is an error.
func (h Hasher) Verify(pw, encoded string) (ok, rehash bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	if len(pw) > MaxBytes {
		return false, false, nil
	}
	got := h.argon2id([]byte(pw), salt, p, uint32(len(key)))
	ok = subtle.ConstantTimeCompare(got, key) == 1
	rehash = p.Memory != h.P.Memory || p.Time != h.P.Time || p.Threads != h.P.Threads ||
		uint32(len(salt)) != h.P.SaltLen || uint32(len(key)) != h.P.KeyLen
	return ok, rehash, nil
}

// Upper bounds on stored parameters, so a corrupted row cannot make a login allocate
// gigabytes or spin for minutes.
const (
	maxMemory = 1 << 20 // 1 GiB in KiB
	maxTime   = 20
)

func decode(s string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("password hash: not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("password hash: unsupported version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("password hash: parameters %q: %w", parts[3], err)
	}
	if p.Memory < 8 || p.Memory > maxMemory || p.Time < 1 || p.Time > maxTime || p.Threads < 1 {
		return p, nil, nil, fmt.Errorf("password hash: parameters %q out of range", parts[3])
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("password hash: bad salt")
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("password hash: bad key")
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
