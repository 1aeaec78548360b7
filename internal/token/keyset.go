package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// StoredKey is a signing key as kept in the secret store.
type StoredKey struct {
	ID      string     `json:"kid"`
	Seed    string     `json:"seed"` // base64 of the 32-byte Ed25519 seed
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"` // no longer signs; still verifies
}

// KeySet is the signing key set kept in the secret store: the newest unretired key signs,
// every key in the set verifies (and is published in the JWKS).
type KeySet struct {
	Keys []StoredKey `json:"keys"`
}

// ParseKeySet decodes and checks a key set.
func ParseKeySet(b []byte) (KeySet, error) {
	var s KeySet
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("signing key set: %w", err)
	}
	seen := map[string]bool{}
	for _, k := range s.Keys {
		if k.ID == "" || seen[k.ID] {
			return s, fmt.Errorf("signing key set: empty or duplicate kid %q", k.ID)
		}
		seen[k.ID] = true
		if _, err := k.key(); err != nil {
			return s, err
		}
	}
	if _, err := s.Signing(); err != nil {
		return s, err
	}
	return s, nil
}

func (k StoredKey) key() (Key, error) {
	seed, err := base64.StdEncoding.DecodeString(k.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("signing key %s: seed must be base64 of %d bytes", k.ID, ed25519.SeedSize)
	}
	return Key{ID: k.ID, Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// Signing returns the newest key that is not retired.
func (s KeySet) Signing() (Key, error) {
	var best *StoredKey
	for i := range s.Keys {
		k := &s.Keys[i]
		if k.Retired == nil && (best == nil || k.Created.After(best.Created)) {
			best = k
		}
	}
	if best == nil {
		return Key{}, errors.New("signing key set: no unretired key")
	}
	return best.key()
}

// JWKS returns the public keys of every key in the set.
func (s KeySet) JWKS() JWKS {
	out := JWKS{Keys: []JWK{}}
	for _, sk := range s.Keys {
		if k, err := sk.key(); err == nil {
			out.Keys = append(out.Keys, PublicJWK(k))
		}
	}
	return out
}

// Rotate retires the signing key(s), adds a new one, and drops keys retired more than
// retain ago (retain must exceed the access-token lifetime plus the time auth takes to
// notice the change, so every token signed by a dropped key has expired).
func (s *KeySet) Rotate(now time.Time, retain time.Duration) (added Key, dropped []string, err error) {
	added, err = NewKey()
	if err != nil {
		return Key{}, nil, err
	}
	kept := s.Keys[:0]
	for _, k := range s.Keys {
		if k.Retired != nil && now.Sub(*k.Retired) > retain {
			dropped = append(dropped, k.ID)
			continue
		}
		if k.Retired == nil {
			t := now
			k.Retired = &t
		}
		kept = append(kept, k)
	}
	s.Keys = append(kept, storedKey(added, now))
	sort.Slice(s.Keys, func(i, j int) bool { return s.Keys[i].Created.Before(s.Keys[j].Created) })
	return added, dropped, nil
}

// NewKeySet returns a set with one fresh key.
func NewKeySet(now time.Time) (KeySet, error) {
	k, err := NewKey()
	if err != nil {
		return KeySet{}, err
	}
	return KeySet{Keys: []StoredKey{storedKey(k, now)}}, nil
}

func storedKey(k Key, now time.Time) StoredKey {
	return StoredKey{ID: k.ID, Seed: base64.StdEncoding.EncodeToString(k.Private.Seed()), Created: now.UTC()}
}
