package clustersecrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCluster is kubectl over an in-memory namespace: get, create (failing on a name that
// exists) and apply of Secrets.
type fakeCluster struct {
	secrets map[string]map[string]string
	args    [][]string
}

func (f *fakeCluster) kubectl(_ context.Context, stdin []byte, args ...string) ([]byte, error) {
	f.args = append(f.args, args)
	switch args[0] {
	case "get":
		var l struct {
			Items []map[string]any `json:"items"`
		}
		for name, fields := range f.secrets {
			data := map[string]string{}
			for k, v := range fields {
				data[k] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			l.Items = append(l.Items, map[string]any{"metadata": map[string]string{"name": name}, "data": data})
		}
		return json.Marshal(l)
	case "create", "apply":
		var l struct{ Items []secret }
		if err := json.Unmarshal(stdin, &l); err != nil {
			return nil, err
		}
		for _, s := range l.Items {
			if _, ok := f.secrets[s.Metadata.Name]; ok && args[0] == "create" {
				return nil, fmt.Errorf("secrets %q already exists", s.Metadata.Name)
			}
			f.secrets[s.Metadata.Name] = s.StringData
		}
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected kubectl %v", args)
}

func TestEnsureCreatesOnceAndKeepsKeys(t *testing.T) {
	ctx := context.Background()
	f := &fakeCluster{secrets: map[string]map[string]string{"unrelated": {"x": "y"}}}
	p := Plan{Namespace: "goplt", Apps: []string{"notes", "gateway"}, EventApps: []string{"notes"}, PostgresSecret: "goplt-postgres",
		DatabaseURL: "postgres://u:p@db/goplt", Declared: []string{"auth-signing-keys"}}
	r, err := Ensure(ctx, f.kubectl, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"audit-checkpoint-key", "auth-signing-keys", "event-keys", "event-signing-notes", "gateway-api-token", "gateway-app-token",
		"goplt-postgres", "identity-bootstrap-admin", "notes-api-token", "notes-app-token"}
	if !slices.Equal(r.Created, want) || len(r.Missing) != 0 {
		t.Fatalf("created %v missing %v, want %v", r.Created, r.Missing, want)
	}
	if _, ok := f.secrets["kafka-admin"]; ok {
		t.Error("the local broker's superuser was created in the cluster")
	}
	for _, a := range f.args {
		if strings.Contains(strings.Join(a, " "), "postgres://") {
			t.Errorf("a value was passed as an argument: %v", a)
		}
	}
	before := fmt.Sprint(f.secrets)
	r, err = Ensure(ctx, f.kubectl, p, time.Now())
	if err != nil || len(r.Created)+len(r.Updated) != 0 || fmt.Sprint(f.secrets) != before {
		t.Fatalf("second run: %+v %v, or values changed", r, err)
	}
	// A new app with events: its keys are added, the public keys follow, the rest is kept.
	notesKeys := f.secrets["event-signing-notes"]["keyset"]
	p.Apps, p.EventApps = append(p.Apps, "blog"), append(p.EventApps, "blog")
	r, err = Ensure(ctx, f.kubectl, p, time.Now())
	if err != nil || !slices.Equal(r.Updated, []string{"event-keys"}) || !slices.Contains(r.Created, "event-signing-blog") {
		t.Fatalf("new app: %+v %v", r, err)
	}
	if f.secrets["event-signing-notes"]["keyset"] != notesKeys {
		t.Error("an existing key set changed")
	}
	if !strings.Contains(f.secrets["event-keys"]["blog"], "kid") || !strings.Contains(f.secrets["event-keys"]["notes"], "kid") {
		t.Errorf("event-keys = %v", f.secrets["event-keys"])
	}
}

func TestEnsureReportsWhatItCannotMake(t *testing.T) {
	f := &fakeCluster{secrets: map[string]map[string]string{}}
	r, err := Ensure(context.Background(), f.kubectl, Plan{Namespace: "goplt", Apps: []string{"shop"}, PostgresSecret: "goplt-postgres",
		Declared: []string{"shop-payment-api-key"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Missing, []string{"goplt-postgres", "shop-payment-api-key"}) {
		t.Fatalf("missing = %v", r.Missing)
	}
}
