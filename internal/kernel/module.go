package kernel

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/goplt/goplt/internal/naming"
)

// Module is the contract every goplt app implements.
//
// Lifecycle, run by Main/Run:
//  1. Name identifies the module; it prefixes its permissions and names its database schema.
//  2. Init declares the module's routes, event subscriptions, migrations and permissions on
//     the Kernel. It does no I/O: the database and the sidecar may not be reachable yet.
//  3. The kernel validates the declarations, connects the database (creating the module's
//     schema), applies migrations in order, and starts serving HTTP behind the app-token check.
//  4. If the module is a Starter, Start runs; its ctx ends when the app stops.
//  5. Once started and the sidecar is connected, /readyz answers 200.
//  6. On SIGTERM or SIGINT: /readyz answers 503, in-flight requests finish, then Stop runs
//     if the module is a Stopper, then the database and sidecar connections close.
type Module interface {
	Name() string
	Init(k *Kernel) error
}

// Starter is implemented by modules with background work to start after migrations.
type Starter interface {
	Start(ctx context.Context) error
}

// Stopper is implemented by modules that must release something on shutdown.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Access says who may call a route: a permission, nobody checks (public), or only some apps
// (internal). It comes from the module's manifest, through the generated route table.
type Access struct {
	Permission string
	Public     bool
	// Callers, for an internal route: the app ids allowed to call it. The generated Dapr
	// access control enforces this; the kernel checks the caller id the sidecar reports too.
	Callers []string
}

// DeclaredRoute is a route of the module's manifest: its net/http pattern and who may call
// it. The generated contract package lists them (contract.Routes()) for k.UseRoutes. The
// gateway enforces the permission and Dapr's access control the callers, both compiled from
// the same manifest; the kernel refuses to start unless Init gives every declared route a
// handler, and no undeclared one.
type DeclaredRoute struct {
	Pattern string // "METHOD /path/{param}"
	Access  Access
}

// Route is a route with its handler.
type Route struct {
	Pattern string // net/http pattern, "METHOD /path/{param}"
	Access  Access
	Handler http.Handler
}

// Subscription is a declared event subscription: Dapr delivers Topic's events to Path. One of
// Handler (event by event) and Bulk (batches) is set.
type Subscription struct {
	Topic   string
	Path    string
	Handler EventHandler
	Bulk    BulkEventHandler
	// DeadLetters marks a dead-letter topic: its events are delivered unverified, because
	// what failed (a forged event, say) lands there too.
	DeadLetters bool
}

// PermissionDecl is a permission the module defines.
type PermissionDecl struct {
	Name        string
	Description string
}

// UseRoutes sets the module's route table, from its manifest: k.UseRoutes(contract.Routes()).
func (k *Kernel) UseRoutes(routes []DeclaredRoute) { k.declared = append(k.declared, routes...) }

// Handle serves a route of the module's route table (UseRoutes) with h. Who may call it is
// the manifest's to say, not the handler's.
func (k *Kernel) Handle(pattern string, h http.Handler) {
	k.routes = append(k.routes, Route{Pattern: pattern, Handler: h})
}

// HandleFunc is Handle for a function.
func (k *Kernel) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	k.Handle(pattern, http.HandlerFunc(h))
}

// Subscribe declares that events on topic arrive at path (the subscription itself is a Dapr
// resource generated from the manifest).
func (k *Kernel) Subscribe(topic, path string, h EventHandler) {
	k.subs = append(k.subs, Subscription{Topic: topic, Path: path, Handler: h})
}

// SubscribeDeadLetters declares a subscription to a dead-letter topic: like Subscribe, but the
// events are not checked for a valid signature (rejected events are among them). Handlers must
// treat them as untrusted.
func (k *Kernel) SubscribeDeadLetters(topic, path string, h EventHandler) {
	k.subs = append(k.subs, Subscription{Topic: topic, Path: path, Handler: h, DeadLetters: true})
}

// SubscribeBulk declares that events on topic arrive at path in batches: the manifest's
// subscription says `bulk:` (Dapr bulk subscribe), and h handles a whole batch at once, for
// example in one database transaction. Single deliveries (a subscription without `bulk:`)
// reach h as batches of one.
func (k *Kernel) SubscribeBulk(topic, path string, h BulkEventHandler) {
	k.subs = append(k.subs, Subscription{Topic: topic, Path: path, Bulk: h})
}

// Migrations sets the module's SQL migrations: the folder dir of fsys (usually an embed.FS),
// holding goose files (NNN_name.sql with `-- +goose Up` sections), applied in order at start.
func (k *Kernel) Migrations(fsys fs.FS, dir string) {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		k.initErrs = append(k.initErrs, fmt.Sprintf("migrations folder %q: %v", dir, err))
		return
	}
	k.migrations = sub
}

// DefinePermissions declares permissions the module's routes may require: usually the
// generated list, k.DefinePermissions(permissions.Declared()...).
func (k *Kernel) DefinePermissions(decls ...PermissionDecl) { k.perms = append(k.perms, decls...) }

// DefinePermission declares a permission the module's routes may require.
func (k *Kernel) DefinePermission(name, description string) {
	k.perms = append(k.perms, PermissionDecl{Name: name, Description: description})
}

// validate checks the declarations made in Init, reporting every problem.
func (k *Kernel) validate() error {
	errs := append([]string(nil), k.initErrs...)
	perms := map[string]bool{}
	for _, p := range k.perms {
		module, ok := naming.PermissionModule(p.Name)
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("permission %q: want <module>.<resource>.<action> in lower case", p.Name))
		case module != k.module.Name():
			errs = append(errs, fmt.Sprintf("permission %q: must start with the module name %q", p.Name, k.module.Name()+"."))
		case perms[p.Name]:
			errs = append(errs, fmt.Sprintf("permission %q declared twice", p.Name))
		}
		perms[p.Name] = true
	}
	patterns := map[string]bool{}
	errs = append(errs, k.matchRoutes()...)
	for _, r := range k.declared {
		internal := len(r.Access.Callers) > 0
		switch {
		case internal && (r.Access.Public || r.Access.Permission != ""):
			errs = append(errs, fmt.Sprintf("route %q: internal and public or permission at once", r.Pattern))
		case internal && !strings.Contains(r.Pattern, " /internal/"):
			errs = append(errs, fmt.Sprintf("route %q: internal routes must be under /internal/", r.Pattern))
		case internal:
		case r.Access.Public && r.Access.Permission != "":
			errs = append(errs, fmt.Sprintf("route %q: public and permission %q at once", r.Pattern, r.Access.Permission))
		case !r.Access.Public && r.Access.Permission == "":
			errs = append(errs, fmt.Sprintf("route %q: needs a permission or public access", r.Pattern))
		case r.Access.Permission != "" && !perms[r.Access.Permission]:
			errs = append(errs, fmt.Sprintf("route %q: permission %q is not declared with DefinePermission", r.Pattern, r.Access.Permission))
		}
	}
	for _, r := range k.routes {
		patterns[r.Pattern] = true
	}
	for _, s := range k.subs {
		if s.Topic == "" || !strings.HasPrefix(s.Path, "/") || (s.Handler == nil) == (s.Bulk == nil) {
			errs = append(errs, fmt.Sprintf("subscription %q -> %q: needs a topic, a path starting with / and a handler", s.Topic, s.Path))
		}
		if patterns["POST "+s.Path] {
			errs = append(errs, fmt.Sprintf("subscription path %q is also a route", s.Path))
		}
		patterns["POST "+s.Path] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("module %s: invalid declarations:\n  %s", k.module.Name(), strings.Join(errs, "\n  "))
	}
	return nil
}

// matchRoutes joins the handlers Init registered with the declared route table, giving each
// route its access, and reports every difference between the two.
func (k *Kernel) matchRoutes() []string {
	var errs []string
	if len(k.routes) > 0 && len(k.declared) == 0 {
		return []string{"the module serves routes but declares no route table: call k.UseRoutes(contract.Routes()) in Init (goplt generate writes it from the manifest)"}
	}
	declared := map[string]Access{}
	for _, d := range k.declared {
		if _, dup := declared[d.Pattern]; dup {
			errs = append(errs, fmt.Sprintf("route %q declared twice", d.Pattern))
		}
		declared[d.Pattern] = d.Access
	}
	served := map[string]bool{}
	for i, r := range k.routes {
		switch {
		case served[r.Pattern]:
			errs = append(errs, fmt.Sprintf("route %q has two handlers", r.Pattern))
		case r.Handler == nil:
			errs = append(errs, fmt.Sprintf("route %q: nil handler", r.Pattern))
		}
		served[r.Pattern] = true
		access, ok := declared[r.Pattern]
		if !ok {
			errs = append(errs, fmt.Sprintf("route %q has a handler but the manifest declares no such route: add it to the manifest's routes and run goplt generate, or remove the handler", r.Pattern))
			continue
		}
		k.routes[i].Access = access
	}
	for _, d := range k.declared {
		if !served[d.Pattern] {
			errs = append(errs, fmt.Sprintf("route %q is declared in the manifest but Init registers no handler for it", d.Pattern))
		}
	}
	return errs
}
