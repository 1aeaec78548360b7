package policydoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadGivesRolesAndDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ladon.json")
	doc := `{"generated": "x", "permissions": ["blog.post.create"], "defaultRoles": ["blog.author"],
	  "policies": [
	    {"id": "role:blog.author", "subjects": ["role:blog.author"], "effect": "allow", "resources": ["<.*>"], "actions": ["blog.post.create"]},
	    {"id": "blog.owner-edits", "subjects": ["<.*>"], "effect": "allow", "resources": ["<.*>"], "actions": ["blog.post.update"],
	     "conditions": {"owner": {"type": "EqualsSubjectCondition"}}}]}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if roles := d.Roles(); len(roles) != 1 || !roles["blog.author"] {
		t.Errorf("roles = %v, want only blog.author (a policy id without role: names no role)", roles)
	}
	if len(d.DefaultRoles) != 1 || d.Policies[1].Conditions["owner"] == nil {
		t.Errorf("document = %+v", d)
	}
}

func TestReadErrorsSayWhat(t *testing.T) {
	if _, err := Read(""); err == nil || !strings.Contains(err.Error(), "GOPLT_POLICIES") {
		t.Errorf("empty path: %v, want the variable named", err)
	}
	p := filepath.Join(t.TempDir(), "ladon.json")
	if err := os.WriteFile(p, []byte(`{"policies": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("bad file: %v, want its path", err)
	}
}

func TestSubjects(t *testing.T) {
	if Role("a") != "role:a" || User("u") != "user:u" || App("x") != "app:x" {
		t.Error("subject prefixes changed: stored audit entries and runtime policies use them")
	}
	if r, ok := RoleOf("role:blog.author"); !ok || r != "blog.author" {
		t.Errorf("RoleOf = %q %v", r, ok)
	}
	if _, ok := RoleOf("user:x"); ok {
		t.Error("a user subject named a role")
	}
}
