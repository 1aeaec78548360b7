package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/goplt/goplt/internal/contracts"
	"github.com/goplt/goplt/internal/naming"
	"github.com/goplt/goplt/internal/routetable"
	"github.com/goplt/goplt/internal/sidecar"
)

var (
	roleRE = regexp.MustCompile(`^([a-z][a-z0-9]*)\.[a-z][a-z0-9_-]*$`)
)

// validateSet applies the rules that span fields and files. It reports every problem.
func validateSet(set *Set) Problems {
	ck := &checker{set: set, byName: map[string]*Module{}, appIDs: map[string]*Module{}, versions: map[string]*semver.Version{},
		allPerms: map[string]*Module{}, roles: map[string]bool{}}
	ck.modules()
	ck.dependencies()
	ck.permissions()
	ck.policies()
	ck.routes()
	ck.apiContracts()
	ck.events()
	if set.Platform != nil {
		ck.ps = append(ck.ps, validatePlatform(set, ck.appIDs)...)
	}
	return ck.ps
}

// checker holds what one family of rules learns for the next ones.
type checker struct {
	set      *Set
	ps       Problems
	byName   map[string]*Module
	appIDs   map[string]*Module
	versions map[string]*semver.Version
	allPerms map[string]*Module // permission -> declaring module
	roles    map[string]bool
}

func (ck *checker) add(pos Position, rule, fix, format string, args ...any) {
	ck.ps = append(ck.ps, Problem{Pos: pos, Rule: rule, Msg: fmt.Sprintf(format, args...), Fix: fix})
}

// modules checks each module on its own: unique names, app ids, ports and schemas; semantic
// versions; how the app runs; paths inside the repository.
func (ck *checker) modules() {
	ports := map[int]*Module{}
	schemas := map[string]*Module{}
	for _, m := range ck.set.Modules {
		name := m.Metadata.Name
		if prev, ok := ck.byName[name]; ok {
			ck.add(m.PosOf("/metadata/name"), "module-unique", "rename one of them", "module %q is also defined in %s", name, prev.File())
			continue
		}
		ck.byName[name] = m
		if v, err := semver.StrictNewVersion(m.Metadata.Version); err != nil {
			ck.add(m.PosOf("/metadata/version"), "semver", "use MAJOR.MINOR.PATCH, e.g. 1.0.0", "version %q is not a semantic version: %v", m.Metadata.Version, err)
		} else {
			ck.versions[name] = v
		}
		if prev, ok := ck.appIDs[m.Spec.App.ID]; ok {
			ck.add(m.PosOf("/spec/app/id"), "app-id-unique", "give each module its own app id", "app id %q is also used by module %s (%s)", m.Spec.App.ID, prev.Metadata.Name, prev.File())
		}
		ck.appIDs[m.Spec.App.ID] = m
		if p := m.Spec.App.Port; p != 0 {
			if prev, ok := ports[p]; ok {
				ck.add(m.PosOf("/spec/app/port"), "port-unique", "use another port, or 0 to let goplt choose", "port %d is also used by module %s", p, prev.Metadata.Name)
			}
			ports[p] = m
			if m.Spec.App.Replicas > 1 {
				ck.add(m.PosOf("/spec/app/replicas"), "replicas-port", "set port: 0 (goplt gives each instance its own), or run one replica",
					"%d replicas cannot share the fixed port %d", m.Spec.App.Replicas, p)
			}
		}
		if len(m.Spec.App.Volumes) > 0 && m.Spec.App.Replicas > 1 {
			ck.add(m.PosOf("/spec/app/replicas"), "replicas-volumes", "run one replica, or keep the data in the database or the state store",
				"%d replicas cannot share volumes: each is one folder, mounted by one pod at a time", m.Spec.App.Replicas)
		}
		vols := map[string]bool{}
		for i, v := range m.Spec.App.Volumes {
			if vols[v.Name] {
				ck.add(m.PosOf(fmt.Sprintf("/spec/app/volumes/%d/name", i)), "volume-unique", "give each volume its own name", "volume %q is declared twice", v.Name)
			}
			vols[v.Name] = true
		}
		outside := func(ptr, rel string) bool {
			err := inRepo(ck.set.Root, rel)
			if err != nil {
				ck.add(m.PosOf(ptr), "path-in-repository", "name a path inside the repository, relative to its root", "%v", err)
			}
			return err != nil
		}
		if m.Spec.App.Build != "" {
			outside("/spec/app/build", m.Spec.App.Build)
		}
		if m.Spec.App.Build != "" && len(m.Spec.App.Command) > 0 {
			ck.add(m.PosOf("/spec/app/build"), "app-run", "keep one of build and command", "app has both build and command")
		}
		if m.Spec.App.Build == "" && len(m.Spec.App.Command) == 0 {
			ck.add(m.PosOf("/spec/app"), "app-run", "add build: ./apps/<name> (a Go package) or command: [...]", "app says neither how to build nor how to run it")
		}
		if db := m.Spec.Database; db != nil {
			if prev, ok := schemas[db.Schema]; ok {
				ck.add(m.PosOf("/spec/database/schema"), "schema-unique", "each module owns its own schema", "database schema %q is also used by module %s", db.Schema, prev.Metadata.Name)
			}
			schemas[db.Schema] = m
			if db.Migrations != "" && !outside("/spec/database/migrations", db.Migrations) {
				if st, err := os.Stat(filepath.Join(ck.set.Root, db.Migrations)); err != nil || !st.IsDir() {
					ck.add(m.PosOf("/spec/database/migrations"), "migrations-folder", "create the folder or fix the path (relative to the repository root)", "migrations folder %s does not exist", db.Migrations)
				}
			}
		}
	}
}

// dependencies checks that dependencies exist, satisfy their constraints and form no cycle.
func (ck *checker) dependencies() {
	for _, m := range ck.set.Modules {
		for i, d := range m.Spec.DependsOn {
			ptr := fmt.Sprintf("/spec/dependsOn/%d", i)
			c, err := semver.NewConstraint(d.Version)
			if err != nil {
				ck.add(m.PosOf(ptr+"/version"), "semver", `write a constraint such as ">=1.0.0 <2.0.0"`, "version constraint %q does not parse: %v", d.Version, err)
				continue
			}
			dep, ok := ck.byName[d.Name]
			switch {
			case d.Name == m.Metadata.Name:
				ck.add(m.PosOf(ptr+"/name"), "dependency-self", "remove it", "module %s depends on itself", d.Name)
			case !ok:
				ck.add(m.PosOf(ptr+"/name"), "dependency-missing", "add manifests/"+d.Name+".yaml or remove the dependency", "module %s depends on %q, which no manifest defines", m.Metadata.Name, d.Name)
			case ck.versions[d.Name] != nil && !c.Check(ck.versions[d.Name]):
				ck.add(m.PosOf(ptr+"/version"), "dependency-version", "widen the constraint or change "+dep.File(), "%s %s does not satisfy %q", d.Name, ck.versions[d.Name], d.Version)
			}
		}
	}
	if cycle := findCycle(ck.set.Modules); len(cycle) > 0 {
		m := ck.byName[cycle[0]]
		ck.add(m.PosOf("/spec/dependsOn"), "dependency-cycle", "break the cycle: modules must form a DAG (use events for the reverse direction)", "dependency cycle: %s", strings.Join(cycle, " -> "))
	}
}

// permissions checks permission and role names, and that roles grant declared permissions.
func (ck *checker) permissions() {
	for _, m := range ck.set.Modules {
		for i, p := range m.Spec.Permissions {
			ptr := fmt.Sprintf("/spec/permissions/%d/name", i)
			module, ok := naming.PermissionModule(p.Name)
			switch {
			case !ok:
				ck.add(m.PosOf(ptr), "permission-name", "name it <module>.<resource>.<action>, e.g. "+m.Metadata.Name+".post.create", "permission %q is not <module>.<resource>.<action>", p.Name)
			case module != m.Metadata.Name:
				ck.add(m.PosOf(ptr), "permission-prefix", "start it with "+m.Metadata.Name+".", "permission %q does not start with the module name %q", p.Name, m.Metadata.Name)
			}
			if prev, ok := ck.allPerms[p.Name]; ok {
				ck.add(m.PosOf(ptr), "permission-unique", "remove the repetition", "permission %q is already declared by module %s", p.Name, prev.Metadata.Name)
			}
			ck.allPerms[p.Name] = m
		}
	}
	for _, m := range ck.set.Modules {
		for i, r := range m.Spec.Roles {
			ptr := fmt.Sprintf("/spec/roles/%d", i)
			sub := roleRE.FindStringSubmatch(r.Name)
			if sub == nil || sub[1] != m.Metadata.Name {
				ck.add(m.PosOf(ptr+"/name"), "role-name", "name it "+m.Metadata.Name+".<role>", "role %q is not %s.<role>", r.Name, m.Metadata.Name)
			}
			if ck.roles[r.Name] {
				ck.add(m.PosOf(ptr+"/name"), "role-unique", "remove the repetition", "role %q is declared twice", r.Name)
			}
			ck.roles[r.Name] = true
			for j, p := range r.Permissions {
				if _, ok := ck.allPerms[p]; !ok {
					ck.add(m.PosOf(fmt.Sprintf("%s/permissions/%d", ptr, j)), "role-permission", "declare it under permissions, or fix the name", "role %s grants %q, which no module declares", r.Name, p)
				}
			}
		}
	}
}

// policies checks module policies: named after the module, granting only its own permissions.
func (ck *checker) policies() {
	for _, m := range ck.set.Modules {
		for i, p := range m.Spec.Policies {
			ptr := fmt.Sprintf("/spec/policies/%d", i)
			if !strings.HasPrefix(p.ID, m.Metadata.Name+".") {
				ck.add(m.PosOf(ptr+"/id"), "policy-id", "name it "+m.Metadata.Name+".<name>", "policy id %q does not start with the module name", p.ID)
			}
			for j, a := range p.Actions {
				if ck.allPerms[a] != m {
					ck.add(m.PosOf(fmt.Sprintf("%s/actions/%d", ptr, j)), "policy-action", "list permissions this module declares", "policy %s: action %q is not a permission of module %s", p.ID, a, m.Metadata.Name)
				}
			}
		}
	}
}

// routes checks that every route declares its access and that no two routes overlap.
func (ck *checker) routes() {
	type placed struct {
		m   *Module
		i   int
		pat routetable.Pattern
	}
	var routes []placed
	for _, m := range ck.set.Modules {
		for i, r := range m.Spec.Routes {
			ptr := fmt.Sprintf("/spec/routes/%d", i)
			switch {
			case len(r.Callers) > 0 && (r.Public || r.Permission != ""):
				ck.add(m.PosOf(ptr), "route-access", "an internal route (callers) takes neither public nor permission", "route %s %s is internal (callers) and also public or requires a permission", r.Method, r.Path)
			case len(r.Callers) > 0 && !strings.HasPrefix(r.Path, "/internal/"):
				ck.add(m.PosOf(ptr+"/path"), "route-internal-path", "move it under /internal/", "internal route %s %s must start with /internal/, so access control can deny the prefix", r.Method, r.Path)
			case len(r.Callers) > 0:
				for j, c := range r.Callers {
					if c != "*" && ck.appIDs[c] == nil {
						ck.add(m.PosOf(fmt.Sprintf("%s/callers/%d", ptr, j)), "route-caller", "name the app id of a module", "route %s %s: caller %q is not the app id of any module", r.Method, r.Path, c)
					}
				}
			case len(r.Callers) == 0 && strings.HasPrefix(r.Path, "/internal/"):
				ck.add(m.PosOf(ptr+"/path"), "route-internal-path", "list the app ids allowed to call it under callers", "route %s %s is under /internal/ but names no callers", r.Method, r.Path)
			case r.Public && r.Permission != "":
				ck.add(m.PosOf(ptr), "route-access", "a public route needs no permission: remove one", "route %s %s is public and requires %q", r.Method, r.Path, r.Permission)
			case !r.Public && r.Permission == "":
				ck.add(m.PosOf(ptr), "route-access", "add permission: <a declared permission>, or public: true", "route %s %s has neither a permission nor public: true", r.Method, r.Path)
			case r.Permission != "" && ck.allPerms[r.Permission] != m:
				ck.add(m.PosOf(ptr+"/permission"), "route-permission", "declare it in this module's permissions", "route %s %s requires %q, which module %s does not declare", r.Method, r.Path, r.Permission, m.Metadata.Name)
			}
			pat, err := routetable.ParsePattern(r.Path)
			if err != nil {
				ck.add(m.PosOf(ptr+"/path"), "route-path", "use /literal/{param} segments, with {rest...} only last", "route path %q: %v", r.Path, err)
				continue
			}
			for _, o := range routes {
				or := o.m.Spec.Routes[o.i]
				if or.Method == r.Method && o.pat.Overlaps(pat) {
					ck.add(m.PosOf(ptr+"/path"), "route-overlap", "make the paths distinct (a literal segment where the other has a parameter is still ambiguous)",
						"route %s %s overlaps %s %s of module %s (%s): one request could match both", r.Method, r.Path, or.Method, or.Path, o.m.Metadata.Name, o.m.PosOf(fmt.Sprintf("/spec/routes/%d/path", o.i)))
				}
			}
			routes = append(routes, placed{m, i, pat})
		}
	}
}

// events checks one publisher per topic, a publisher for each subscription, the schemas,
// payload versions and subscription routes.
func (ck *checker) events() {
	publishers := map[string]*Module{}
	for _, m := range ck.set.Modules {
		for i, p := range m.Spec.Events.Publishes {
			ptr := fmt.Sprintf("/spec/events/publishes/%d", i)
			if prev, ok := publishers[p.Topic]; ok {
				ck.add(m.PosOf(ptr+"/topic"), "topic-one-publisher", "one module owns a topic: publish under your own name", "topic %q is already published by module %s", p.Topic, prev.Metadata.Name)
			}
			publishers[p.Topic] = m
			if !strings.HasPrefix(p.Topic, m.Metadata.Name+".") {
				ck.add(m.PosOf(ptr+"/topic"), "topic-prefix", "name it "+m.Metadata.Name+".<entity>.<event>", "published topic %q does not start with the module name", p.Topic)
			}
			if err := inRepo(ck.set.Root, p.Schema); err != nil {
				ck.add(m.PosOf(ptr+"/schema"), "path-in-repository", "name a path inside the repository, relative to its root", "%v", err)
			} else if err := checkJSONSchemaFile(filepath.Join(ck.set.Root, p.Schema)); err != nil {
				ck.add(m.PosOf(ptr+"/schema"), "event-schema", "point to a JSON Schema file relative to the repository root", "event schema %s: %v", p.Schema, err)
			}
			if !strings.HasSuffix(p.Schema, SchemaVersionSuffix(p.PayloadVersion())) {
				ck.add(m.PosOf(ptr+"/schema"), "event-schema-version", "name the file <event>"+SchemaVersionSuffix(p.PayloadVersion())+", or set version to the file's",
					"schema %s is not named for version %d", p.Schema, p.PayloadVersion())
			}
		}
	}
	for _, m := range ck.set.Modules {
		paths := map[string]bool{}
		for _, r := range m.Spec.Routes {
			paths[r.Path] = true
		}
		for i, s := range m.Spec.Events.Subscribes {
			ptr := fmt.Sprintf("/spec/events/subscribes/%d", i)
			pub, ok := publishers[s.Topic]
			if !ok && !s.External {
				ck.add(m.PosOf(ptr+"/topic"), "topic-no-publisher", "fix the topic name, add the publishing module, or set external: true", "no module publishes topic %q", s.Topic)
			}
			if ok {
				for j, v := range s.Accepts {
					if rule, msg := acceptable(ck.set.Root, pub, s.Topic, v); rule != "" {
						ck.add(m.PosOf(fmt.Sprintf("%s/accepts/%d", ptr, j)), rule, "accept the version published now, or make the publisher's change compatible", "%s", msg)
					}
				}
			}
			if paths[s.Route] {
				ck.add(m.PosOf(ptr+"/route"), "subscription-route", "use a distinct path such as /events/...", "subscription route %s is also an HTTP route or another subscription's", s.Route)
			}
			paths[s.Route] = true
		}
	}
}

func validatePlatform(set *Set, appIDs map[string]*Module) Problems {
	var ps Problems
	p := set.Platform
	if g := p.Spec.Gateway; g != "" && appIDs[g] == nil {
		ps = append(ps, Problem{Pos: p.PosOf("/spec/gateway"), Rule: "gateway-app", Msg: fmt.Sprintf("gateway %q is not the app id of any module", g), Fix: "name the gateway module's app id, or remove the field"})
	}
	declared := map[string]bool{}
	for _, m := range set.Modules {
		for _, r := range m.Spec.Roles {
			declared[r.Name] = true
		}
	}
	for i, r := range p.Spec.DefaultRoles {
		if !declared[r] {
			ps = append(ps, Problem{Pos: p.PosOf(fmt.Sprintf("/spec/defaultRoles/%d", i)), Rule: "default-role", Msg: fmt.Sprintf("default role %q is not declared by any module", r), Fix: "name a role some module declares"})
		}
	}
	for name, prof := range p.Spec.Profiles {
		ps = append(ps, sidecarComponents(set, name)...)
		if prof.BrokerUsers != nil && (prof.PubSub.Type != "pubsub.kafka" || prof.Secrets == nil) {
			ps = append(ps, Problem{Pos: p.PosOf("/spec/profiles/" + name + "/brokerUsers"), Rule: "broker-users",
				Msg: fmt.Sprintf("profile %s: brokerUsers needs a pubsub.kafka pub/sub and a secret store (the passwords live there)", name),
				Fix: "use pubsub.kafka and declare secrets, or remove brokerUsers"})
		}
		for i, c := range prof.DevCallers {
			if appIDs[c] != nil {
				ps = append(ps, Problem{Pos: p.PosOf(fmt.Sprintf("/spec/profiles/%s/devCallers/%d", name, i)), Rule: "dev-caller", Msg: fmt.Sprintf("dev caller %q is also a module's app id", c), Fix: "use another id"})
			}
		}
	}
	return ps
}

// sidecarComponents checks that goplt's daprd can include every component type the profile's
// sidecars need (Set.ComponentUses; internal/sidecar.Catalogue): generate writes the daprd's
// registrations for exactly those types.
func sidecarComponents(set *Set, profile string) Problems {
	var ps Problems
	for _, u := range set.ComponentUses(profile) {
		if _, ok := sidecar.Lookup(u.Kind, u.Type, u.Version); ok {
			continue
		}
		what := u.Type
		if u.Version != "" {
			what += "/" + u.Version
		}
		have := "it can include " + strings.Join(sidecar.Names(u.Kind), ", ")
		if len(sidecar.Names(u.Kind)) == 0 {
			have = "it can include no " + u.Kind + " component"
		}
		ps = append(ps, Problem{
			Pos:  set.Platform.PosOf(fmt.Sprintf("/spec/profiles/%s/%s", profile, u.Block)),
			Rule: "sidecar-component",
			Msg:  fmt.Sprintf("profile %s: goplt's daprd cannot include %s component %s (%s)", profile, u.Kind, what, have),
			Fix:  "use one of those, or add the type with its registration to internal/sidecar.Catalogue (then `make generate` and `make deps`)",
		})
	}
	return ps
}

// findCycle returns one dependency cycle (first module repeated at the end), or nil.
func findCycle(mods []*Module) []string {
	deps := map[string][]string{}
	for _, m := range mods {
		for _, d := range m.Spec.DependsOn {
			deps[m.Metadata.Name] = append(deps[m.Metadata.Name], d.Name)
		}
	}
	state := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			i := slices.Index(stack, n)
			cycle = append(slices.Clone(stack[i:]), n)
			return true
		case 2:
			return false
		}
		state[n] = 1
		stack = append(stack, n)
		ds := slices.Clone(deps[n])
		sort.Strings(ds)
		for _, d := range ds {
			if visit(d) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return false
	}
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		names = append(names, m.Metadata.Name)
	}
	sort.Strings(names)
	for _, n := range names {
		if visit(n) {
			return cycle
		}
	}
	return nil
}

// Order returns the modules' names in dependency order (dependencies first, ties by name).
// The set must be valid (no cycles).
func (s *Set) Order() []string {
	done := map[string]bool{}
	var out []string
	var visit func(m *Module)
	visit = func(m *Module) {
		if done[m.Metadata.Name] {
			return
		}
		done[m.Metadata.Name] = true
		ds := make([]string, 0, len(m.Spec.DependsOn))
		for _, d := range m.Spec.DependsOn {
			ds = append(ds, d.Name)
		}
		sort.Strings(ds)
		for _, d := range ds {
			if dm := s.Module(d); dm != nil {
				visit(dm)
			}
		}
		out = append(out, m.Metadata.Name)
	}
	for _, m := range s.Modules {
		visit(m)
	}
	return out
}

// acceptable says whether a subscriber of topic that reads payload version v can read what
// the publisher pub publishes now: the same version, or an older one whose schema the
// published one is compatible with (internal/contracts). It returns the rule broken and why.
func acceptable(root string, pub *Module, topic string, v int) (rule, msg string) {
	var p Publication
	for _, x := range pub.Spec.Events.Publishes {
		if x.Topic == topic {
			p = x
		}
	}
	now := p.PayloadVersion()
	if v == now {
		return "", ""
	}
	if v > now {
		return "event-version", fmt.Sprintf("accepts version %d of %s, but module %s publishes version %d", v, topic, pub.Metadata.Name, now)
	}
	for _, f := range []string{p.Schema, p.SchemaFor(v)} {
		if err := inRepo(root, f); err != nil {
			return "path-in-repository", fmt.Sprintf("cannot compare versions %d and %d of %s: %v", v, now, topic, err)
		}
	}
	oldB, err := os.ReadFile(filepath.Join(root, p.SchemaFor(v)))
	if err != nil {
		return "event-version", fmt.Sprintf("accepts version %d of %s, which nobody publishes (no schema %s)", v, topic, p.SchemaFor(v))
	}
	newB, err := os.ReadFile(filepath.Join(root, p.Schema))
	if err != nil {
		return "", "" // reported by event-schema
	}
	oldS, err1 := contracts.Parse(oldB)
	newS, err2 := contracts.Parse(newB)
	if err1 != nil || err2 != nil {
		return "", ""
	}
	if changes := contracts.Breaking(oldS, newS, "version"); len(changes) > 0 {
		var why []string
		for _, c := range changes {
			why = append(why, c.String())
		}
		return "event-compat", fmt.Sprintf("accepts version %d of %s, but version %d published by module %s breaks it: %s",
			v, topic, now, pub.Metadata.Name, strings.Join(why, "; "))
	}
	return "", ""
}

// checkJSONSchemaFile checks that a payload schema exists and compiles as a JSON Schema.
func checkJSONSchemaFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read it (%v)", unwrapPathErr(err))
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("event.json", doc); err != nil {
		return err
	}
	if _, err := c.Compile("event.json"); err != nil {
		return fmt.Errorf("not a valid JSON Schema: %v", err)
	}
	return nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
