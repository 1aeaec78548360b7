package compile

import (
	"reflect"
	"testing"

	"github.com/goplt/goplt/internal/manifest"
)

func TestInternalRouteDenials(t *testing.T) {
	m := &manifest.Module{}
	m.Spec.Routes = []manifest.Route{
		{Method: "GET", Path: "/users/{id}", Permission: "identity.user.read"},
		{Method: "POST", Path: "/internal/credentials/verify", Callers: []string{"auth"}},
		{Method: "GET", Path: "/internal/principals/{id}", Callers: []string{"auth", "billing"}},
		{Method: "GET", Path: "/internal/files/{rest...}", Callers: []string{"auth"}},
	}
	for _, tc := range []struct {
		caller string
		want   []aclOperation
	}{
		{"auth", nil}, // listed on every internal route
		{"billing", []aclOperation{
			{Name: "/internal/credentials/verify", HTTPVerb: []string{"POST"}, Action: "deny"},
			{Name: "/internal/files/**", HTTPVerb: []string{"GET"}, Action: "deny"},
		}},
		{"gateway", []aclOperation{{Name: "/internal/**", HTTPVerb: []string{"*"}, Action: "deny"}}},
	} {
		if got := internalDenials(m, tc.caller); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.caller, got, tc.want)
		}
	}
	if got := aclOperationName("/internal/principals/{id}/roles"); got != "/internal/principals/*/roles" {
		t.Errorf("aclOperationName = %s", got)
	}
}
