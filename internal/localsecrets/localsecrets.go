// Package localsecrets keeps the secrets file behind the local profile's Dapr secret store
// (secretstores.local.file with multiValued: each top-level key is a secret whose fields are
// its values). It creates the secrets the core services need on first use, random, never
// hard-coded, and rotates the auth signing keys.
package localsecrets

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/token"
)

// File is a secrets file: secret name -> field -> value.
type File map[string]map[string]string

// Read loads path; a missing file is an empty File.
func Read(path string) (File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, nil
	}
	if err != nil {
		return nil, err
	}
	f := File{}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w (it maps secret names to objects of string fields)", path, err)
	}
	return f, nil
}

// Write replaces path atomically, readable by its owner only.
func (f File) Write(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Created reports what Ensure made.
type Created struct {
	AdminEmail, AdminPassword string // set when the bootstrap administrator's secret was made
	SigningKey                string // kid of a new signing key set
}

// Ensure adds the secrets the core services need that path lacks.
func Ensure(path string, now time.Time) (Created, error) {
	unlock, err := lock(path)
	if err != nil {
		return Created{}, err
	}
	defer unlock()
	f, err := Read(path)
	if err != nil {
		return Created{}, err
	}
	c, changed, err := f.AddCore(now)
	if err != nil || !changed {
		return c, err
	}
	return c, f.Write(path)
}

// AddCore adds to f, in memory, the core services' secrets it lacks (the bootstrap
// administrator, the access-token and audit checkpoint keys, the local broker's superuser),
// and says whether it added any.
func (f File) AddCore(now time.Time) (Created, bool, error) {
	var c Created
	changed := false
	if f[platformsecrets.BootstrapAdmin][platformsecrets.BootstrapAdminPassword] == "" {
		pw, err := randomPassword()
		if err != nil {
			return c, false, err
		}
		f[platformsecrets.BootstrapAdmin] = map[string]string{platformsecrets.BootstrapAdminEmail: platformsecrets.DefaultAdminEmail, platformsecrets.BootstrapAdminPassword: pw}
		c.AdminEmail, c.AdminPassword = platformsecrets.DefaultAdminEmail, pw
		changed = true
	}
	if f[platformsecrets.SigningKeys][platformsecrets.SigningKeysField] == "" {
		ks, err := token.NewKeySet(now)
		if err != nil {
			return c, false, err
		}
		b, _ := json.Marshal(ks)
		f[platformsecrets.SigningKeys] = map[string]string{platformsecrets.SigningKeysField: string(b)}
		c.SigningKey = ks.Keys[0].ID
		changed = true
	}
	if f[platformsecrets.AuditCheckpointKey][platformsecrets.AuditCheckpointSeed] == "" {
		seed := make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return c, false, err
		}
		f[platformsecrets.AuditCheckpointKey] = map[string]string{platformsecrets.AuditCheckpointSeed: base64.StdEncoding.EncodeToString(seed)}
		changed = true
	}
	if f[platformsecrets.BrokerAdmin][platformsecrets.BrokerAdminPassword] == "" {
		pw, err := randomPassword()
		if err != nil {
			return c, false, err
		}
		f[platformsecrets.BrokerAdmin] = map[string]string{platformsecrets.BrokerAdminUser: "goplt-admin", platformsecrets.BrokerAdminPassword: pw}
		changed = true
	}
	return c, changed, nil
}

// EnsureApps adds what apps need that path lacks: an event-signing key set per app (and
// keeps the public keys secret in step with all key sets), and a broker password per broker
// user (secret and key as the generated access list names them).
func EnsureApps(path string, now time.Time, apps []string, brokerUsers []brokeracl.User) error {
	unlock, err := lock(path)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := Read(path)
	if err != nil {
		return err
	}
	if err := f.AddApps(now, apps, brokerUsers); err != nil {
		return err
	}
	return f.Write(path)
}

// AddApps is EnsureApps on f, in memory.
func (f File) AddApps(now time.Time, apps []string, brokerUsers []brokeracl.User) error {
	for _, app := range apps {
		name := eventsig.SigningSecret(app)
		if f[name][eventsig.KeySetField] != "" {
			continue
		}
		ks, err := token.NewKeySet(now)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(ks)
		f[name] = map[string]string{eventsig.KeySetField: string(b)}
	}
	for _, u := range brokerUsers {
		if f[u.Secret][u.Key] != "" {
			continue
		}
		pw, err := randomPassword()
		if err != nil {
			return err
		}
		if f[u.Secret] == nil {
			f[u.Secret] = map[string]string{}
		}
		f[u.Secret][u.Key] = pw
	}
	return f.publishEventKeys()
}

// RandomToken is a fresh random token (144 bits, base64url): a password or an API token.
func RandomToken() (string, error) { return randomPassword() }

// publishEventKeys rewrites the public keys secret from every app's signing key set.
func (f File) publishEventKeys() error {
	pub := map[string]string{}
	for name, fields := range f {
		app, ok := strings.CutPrefix(name, eventsig.SigningSecret(""))
		if !ok || fields[eventsig.KeySetField] == "" {
			continue
		}
		ks, err := token.ParseKeySet([]byte(fields[eventsig.KeySetField]))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b, _ := json.Marshal(ks.JWKS())
		pub[app] = string(b)
	}
	f[eventsig.PublicKeysSecret] = pub
	return nil
}

// RotateEventKey rotates app's event-signing key set like RotateSigningKey, and publishes
// the new public key. retain must exceed the longest time an event can wait in the broker or
// an outbox, or subscribers reject events signed by a dropped key.
func RotateEventKey(path, app string, now time.Time, retain time.Duration) (added string, dropped []string, err error) {
	return rotate(path, eventsig.SigningSecret(app), eventsig.KeySetField, now, retain)
}

// RotateSigningKey rotates the access-token key set in path (see token.KeySet.Rotate).
func RotateSigningKey(path string, now time.Time, retain time.Duration) (added string, dropped []string, err error) {
	return rotate(path, platformsecrets.SigningKeys, platformsecrets.SigningKeysField, now, retain)
}

// rotate rotates the key set kept in secret's field, keeping the public event keys in step.
func rotate(path, secret, field string, now time.Time, retain time.Duration) (added string, dropped []string, err error) {
	unlock, err := lock(path)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	f, err := Read(path)
	if err != nil {
		return "", nil, err
	}
	raw := f[secret][field]
	if raw == "" {
		return "", nil, fmt.Errorf("%s has no %s secret: start the platform once (goplt run) to create it", path, secret)
	}
	ks, err := token.ParseKeySet([]byte(raw))
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	k, dropped, err := ks.Rotate(now, retain)
	if err != nil {
		return "", nil, err
	}
	b, _ := json.Marshal(ks)
	f[secret] = map[string]string{field: string(b)}
	if err := f.publishEventKeys(); err != nil {
		return "", nil, err
	}
	return k.ID, dropped, f.Write(path)
}

// lock serialises read-modify-write of path between processes (runs sharing a stack).
func lock(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func randomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
