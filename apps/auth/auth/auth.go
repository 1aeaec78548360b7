// Package auth is the auth service: it logs users in (credentials are checked by identity,
// through the sidecar), issues short-lived EdDSA access tokens and rotating refresh tokens
// bound to a session (token family), detects refresh-token reuse, revokes sessions, publishes
// its keys as a JWKS and its recent revocations, throttles password guessing, and announces
// every security event on auth.* topics through a transactional outbox.
package auth

import (
	"context"
	"embed"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/goplt/goplt/apps/auth/client"
	"github.com/goplt/goplt/apps/auth/contract"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/token"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Settings are auth's lifetimes, from the environment.
type Settings struct {
	AccessTTL  time.Duration // GOPLT_AUTH_ACCESS_TTL, default 5m
	RefreshTTL time.Duration // GOPLT_AUTH_REFRESH_TTL: idle lifetime of a refresh token, default 24h
	SessionTTL time.Duration // GOPLT_AUTH_SESSION_TTL: absolute lifetime of a session, default 168h
	// KeyRefresh is how often the signing keys are re-read from the secret store
	// (GOPLT_AUTH_KEY_REFRESH, default 30s).
	KeyRefresh time.Duration
}

func settingsFromEnv(getenv func(string) string) (Settings, error) {
	var s Settings
	for _, d := range []struct {
		env string
		dst *time.Duration
		def time.Duration
	}{
		{envvar.AuthAccessTTL, &s.AccessTTL, 5 * time.Minute},
		{envvar.AuthRefreshTTL, &s.RefreshTTL, 24 * time.Hour},
		{envvar.AuthSessionTTL, &s.SessionTTL, 7 * 24 * time.Hour},
		{envvar.AuthKeyRefresh, &s.KeyRefresh, 30 * time.Second},
	} {
		*d.dst = d.def
		if v := getenv(d.env); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t <= 0 {
				return s, fmt.Errorf("%s=%q: want a positive duration such as 5m", d.env, v)
			}
			*d.dst = t
		}
	}
	return s, nil
}

// Module is the auth module.
type Module struct {
	k        *kernel.Kernel
	set      Settings
	identity *identity.Client
	signer   token.Signer
	keys     atomic.Pointer[token.KeySet]
}

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "auth" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	set, err := settingsFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	m.set = set
	m.signer = token.Signer{Issuer: client.Issuer, Audience: client.Audience, TTL: set.AccessTTL}
	k.Migrations(migrations, "migrations")
	k.UseOutbox()
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("POST /login", m.login)
	k.HandleFunc("POST /token/refresh", m.refresh)
	k.HandleFunc("POST /logout", m.logout)
	k.HandleFunc("GET /.well-known/jwks.json", m.jwks)
	k.HandleFunc("GET /revocations", m.revocations)
	k.Subscribe(identity.TopicUserDisabled, "/events/user-disabled", m.userEnded(reasonDisabled))
	k.Subscribe(identity.TopicUserDeleted, "/events/user-deleted", m.userEnded(reasonDeleted))
	k.Subscribe(identity.TopicRolesChanged, "/events/user-roles-changed", m.rolesChanged)
	return nil
}

// Start implements kernel.Starter: it loads the signing keys (and keeps re-reading them, for
// rotation) and starts the outbox relay.
func (m *Module) Start(ctx context.Context) error {
	m.identity = identity.New(m.k.Invoker())
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := m.loadKeys(lctx); err != nil {
		return err
	}
	go m.reloadKeys(ctx)
	return nil
}

// loadKeys reads the key set from the secret store through the sidecar.
func (m *Module) loadKeys(ctx context.Context) error {
	sec, err := m.k.Secret(ctx, platformsecrets.SigningKeys)
	if err != nil {
		return err
	}
	ks, err := token.ParseKeySet([]byte(sec[platformsecrets.SigningKeysField]))
	if err != nil {
		return fmt.Errorf("secret %s: %w", platformsecrets.SigningKeys, err)
	}
	old := m.keys.Swap(&ks)
	signing, _ := ks.Signing()
	if old == nil {
		m.k.Log().Info("signing keys loaded", "keys", len(ks.Keys), "signing_kid", signing.ID)
	} else if prev, _ := old.Signing(); prev.ID != signing.ID {
		m.k.Log().Info("signing key rotated", "keys", len(ks.Keys), "signing_kid", signing.ID, "previous_kid", prev.ID)
	}
	return nil
}

func (m *Module) reloadKeys(ctx context.Context) {
	t := time.NewTicker(m.set.KeyRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, m.set.KeyRefresh)
			err := m.loadKeys(rctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				// Keep signing with the keys we have: a secret-store hiccup must not stop logins.
				m.k.Log().Warn("reloading signing keys failed; keeping the current ones", "err", err)
			}
		}
	}
}
