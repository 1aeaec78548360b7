// Package identity is the identity service: users, their credentials and their roles. It
// stores them in its own schema, hashes passwords with argon2id, creates the bootstrap
// administrator from a secret, and announces every change on identity.user.* topics through
// a transactional outbox, so no event is lost when the sidecar or the broker is briefly down.
package identity

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/apps/identity/contract"
	"github.com/goplt/goplt/apps/identity/permissions"
	"github.com/goplt/goplt/internal/emailaddr"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/password"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/policydoc"
)

//go:embed migrations/*.sql
var migrations embed.FS

// AdminRole is given to the bootstrap administrator.
const AdminRole = "identity.admin"

// Module is the identity module.
type Module struct {
	k      *kernel.Kernel
	hasher password.Hasher
	// dummy is a hash verified for unknown emails, so they cost what a wrong password costs.
	dummy string
	roles map[string]bool
	// defaultRoles are given to every registered user (platform.yaml spec.defaultRoles).
	defaultRoles []string
}

// New returns the module.
func New() *Module {
	// One argon2id at a time per core: more would not finish sooner, only hold more memory.
	return &Module{hasher: password.NewHasher(password.OWASP, runtime.GOMAXPROCS(0))}
}

// Name implements kernel.Module.
func (m *Module) Name() string { return "identity" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	k.Migrations(migrations, "migrations")
	k.UseOutbox()
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("POST /users", m.register)
	k.HandleFunc("GET /users", m.list)
	k.HandleFunc("GET /users/{id}", m.get)
	k.HandleFunc("PATCH /users/{id}", m.update)
	k.HandleFunc("POST /users/{id}/disable", m.setStatus(client.StatusDisabled))
	k.HandleFunc("POST /users/{id}/enable", m.setStatus(client.StatusActive))
	k.HandleFunc("DELETE /users/{id}", m.delete)
	k.HandleFunc("PUT /users/{id}/roles", m.setRoles)
	k.HandleFunc("POST /internal/credentials/verify", m.verifyCredentials)
	k.HandleFunc("GET /internal/principals/{id}", m.principal)
	return nil
}

// Start implements kernel.Starter: it loads the role catalogue, starts the outbox relay and
// makes sure the bootstrap administrator exists.
func (m *Module) Start(ctx context.Context) error {
	roles, defaults, err := loadRoles(os.Getenv(envvar.Policies))
	if err != nil {
		return err
	}
	m.roles, m.defaultRoles = roles, defaults
	if m.dummy, err = m.hasher.Hash("dummy password for unknown users"); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return m.bootstrap(bctx)
}

// loadRoles reads the role names from the compiled policies (deploy/policies/ladon.json) and
// the roles new users get.
func loadRoles(path string) (map[string]bool, []string, error) {
	doc, err := policydoc.Read(path)
	if err != nil {
		return nil, nil, fmt.Errorf("role catalogue: %w", err)
	}
	return doc.Roles(), doc.DefaultRoles, nil
}

// bootstrap creates the administrator named in the identity-bootstrap-admin secret, once.
func (m *Module) bootstrap(ctx context.Context) error {
	sec, err := m.k.Secret(ctx, platformsecrets.BootstrapAdmin)
	if err != nil {
		return fmt.Errorf("bootstrap administrator: %w", err)
	}
	email, err := emailaddr.Normalize(sec[platformsecrets.BootstrapAdminEmail])
	if err != nil {
		return fmt.Errorf("bootstrap administrator: secret %s: %w", platformsecrets.BootstrapAdmin, err)
	}
	pw := sec[platformsecrets.BootstrapAdminPassword]
	if err := password.Check(pw); err != nil {
		return fmt.Errorf("bootstrap administrator: secret %s: %w", platformsecrets.BootstrapAdmin, err)
	}
	roles := []string{}
	for r := range m.roles {
		if r == AdminRole || strings.HasSuffix(r, ".admin") {
			roles = append(roles, r)
		}
	}
	slices.Sort(roles)
	u, err := m.createUser(ctx, email, pw, "Administrator", roles)
	switch {
	case errors.Is(err, errEmailTaken):
		return nil // made on an earlier start
	case err != nil:
		return fmt.Errorf("bootstrap administrator: %w", err)
	}
	m.k.Log().Info("bootstrap administrator created", "user_id", u.ID, "email", u.Email, "roles", roles)
	return nil
}
