package compile

import (
	"bytes"
	"fmt"
	"go/format"
	"path"
	"sort"
	"strings"
	"unicode"

	"github.com/goplt/goplt/internal/policydoc"
)

// policies: one allow policy per role. The subject is "role:<role>", the actions are the
// granted permission names, and the resource is any (ladon's <.*>): conditions that narrow
// resources (for example owner-only edits) are added at run time by the authz service.
func (g *gen) policies() {
	var ps []policydoc.Policy
	for _, m := range g.set.Modules {
		for i, r := range m.Spec.Roles {
			g.from("policy "+policydoc.Role(r.Name), m.PosOf(fmt.Sprintf("/spec/roles/%d", i)))
			desc := r.Description
			if desc == "" {
				desc = "role " + r.Name + " of module " + m.Metadata.Name
			}
			ps = append(ps, policydoc.Policy{ID: policydoc.Role(r.Name), Description: desc, Subjects: []string{policydoc.Role(r.Name)},
				Effect: "allow", Resources: []string{"<.*>"}, Actions: sorted(r.Permissions)})
		}
	}
	for _, m := range g.set.Modules {
		for i, p := range m.Spec.Policies {
			g.from("policy "+p.ID, m.PosOf(fmt.Sprintf("/spec/policies/%d", i)))
			ps = append(ps, policydoc.Policy{ID: p.ID, Description: p.Description, Subjects: p.Subjects, Effect: p.Effect,
				Resources: p.Resources, Actions: p.Actions, Conditions: p.Conditions})
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	// The permission catalogue: authz denies any action outside it.
	perms := []string{}
	for _, m := range g.set.Modules {
		for _, p := range m.Spec.Permissions {
			perms = append(perms, p.Name)
		}
	}
	roles := sorted(g.set.Platform.Spec.DefaultRoles)
	if roles == nil {
		roles = []string{}
	}
	g.emitJSON(PoliciesFile, policydoc.Document{Generated: jsonMarker, Permissions: sorted(perms), DefaultRoles: roles, Policies: ps})
}

// kernelImport is the import path of the app kernel, which generated code refers to.
const kernelImport = "github.com/goplt/goplt/internal/kernel"

// permissionConstants writes <app package>/permissions/permissions_gen.go for every module
// built from a Go package, so code names permissions and roles by constant, never by string.
func (g *gen) permissionConstants() error {
	for _, m := range g.set.Modules {
		if m.Spec.App.Build == "" || len(m.Spec.Permissions)+len(m.Spec.Roles) == 0 {
			continue
		}
		var b bytes.Buffer
		b.WriteString(GoHeader)
		fmt.Fprintf(&b, "\n// Package permissions names the permissions and roles of module %s (manifests/%s.yaml).\npackage permissions\n\n", m.Metadata.Name, m.Metadata.Name)
		if len(m.Spec.Permissions) > 0 {
			fmt.Fprintf(&b, "import %q\n\n", kernelImport)
		}
		b.WriteString("// Permissions.\nconst (\n")
		var decls strings.Builder
		for _, p := range m.Spec.Permissions {
			id := goName(strings.TrimPrefix(p.Name, m.Metadata.Name+"."))
			fmt.Fprintf(&decls, "\t\t{Name: %s, Description: %q},\n", id, p.Description)
			if p.Description != "" {
				fmt.Fprintf(&b, "\t// %s: %s.\n", id, strings.TrimSuffix(p.Description, "."))
			}
			fmt.Fprintf(&b, "\t%s = %q\n", id, p.Name)
		}
		b.WriteString(")\n\n// Roles.\nconst (\n")
		for _, r := range m.Spec.Roles {
			fmt.Fprintf(&b, "\tRole%s = %q\n", goName(strings.TrimPrefix(r.Name, m.Metadata.Name+".")), r.Name)
		}
		b.WriteString(")\n")
		if len(m.Spec.Permissions) > 0 {
			b.WriteString("\n// Declared lists every permission the module declares, with its description, in manifest\n" +
				"// order, for Init: k.DefinePermissions(permissions.Declared()...).\n" +
				"func Declared() []kernel.PermissionDecl {\n\treturn []kernel.PermissionDecl{\n" + decls.String() + "\t}\n}\n")
		}
		src, err := format.Source(b.Bytes())
		if err != nil {
			return fmt.Errorf("permission constants of %s: %w", m.Metadata.Name, err)
		}
		g.out = append(g.out, Artifact{Path: path.Join(strings.TrimPrefix(m.Spec.App.Build, "./"), "permissions", "permissions_gen.go"), Data: src,
			Sources: []Source{{"permission constants", m.PosOf("/spec/permissions")}, {"role constants", m.PosOf("/spec/roles")}}})
	}
	return nil
}

// goName turns "note.create" or "post-editor" into "NoteCreate" / "PostEditor".
func goName(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		if r == '.' || r == '_' || r == '-' {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return b.String()
}
