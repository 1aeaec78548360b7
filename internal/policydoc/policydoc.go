// Package policydoc is the compiled policy file (deploy/policies/ladon.json): what goplt
// generate writes from the manifests and what authz and identity read. Its subjects name who a
// policy is for: "role:<name>", "user:<id>" or "app:<app id>".
package policydoc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goplt/goplt/internal/envvar"
)

// Subject prefixes, as ladon policies and audit entries name principals.
const (
	RolePrefix = "role:"
	UserPrefix = "user:"
	AppPrefix  = "app:"
)

// Role is the subject (and the compiled policy id) of a role.
func Role(name string) string { return RolePrefix + name }

// User is the subject of a user.
func User(id string) string { return UserPrefix + id }

// App is the subject of an app (a caller known by its Dapr app id).
func App(id string) string { return AppPrefix + id }

// RoleOf returns the role a subject or compiled policy id names, if it names one.
func RoleOf(s string) (string, bool) { return strings.CutPrefix(s, RolePrefix) }

// Document is the compiled policy file: every declared permission, the roles new users get and
// one allow policy per role (id and subject Role(name)) plus the manifests' own policies.
type Document struct {
	Generated   string   `json:"generated"`
	Permissions []string `json:"permissions"`
	// DefaultRoles are given to every newly registered user.
	DefaultRoles []string `json:"defaultRoles"`
	Policies     []Policy `json:"policies"`
}

// Policy is an ory/ladon policy in ladon's JSON form.
type Policy struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	Subjects    []string `json:"subjects"`
	Effect      string   `json:"effect"`
	Resources   []string `json:"resources"`
	Actions     []string `json:"actions"`
	// Conditions are ladon conditions ({"owner": {"type": "EqualsSubjectCondition"}}).
	Conditions map[string]any `json:"conditions,omitempty"`
}

// Roles returns the roles the document defines: the ids of its role policies.
func (d *Document) Roles() map[string]bool {
	roles := map[string]bool{}
	for _, p := range d.Policies {
		if r, ok := RoleOf(p.ID); ok {
			roles[r] = true
		}
	}
	return roles
}

// Read loads a compiled policy file. An empty path is an error that names the variable the
// apps take it from.
func Read(path string) (*Document, error) {
	if path == "" {
		return nil, errors.New(envvar.Policies + " is not set: the compiled policies are needed (goplt run sets it)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("compiled policies: %w", err)
	}
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("compiled policies %s: %w", path, err)
	}
	return &d, nil
}
