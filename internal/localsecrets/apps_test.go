package localsecrets

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/token"
)

// Each app gets its own key set and broker password once; the public keys follow every key
// set, through rotations too.
func TestEnsureAppsAndRotateEventKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	users := []brokeracl.User{{Name: "blog", Secret: "kafka-blog", Key: "password"}}
	now := time.Now()
	if err := EnsureApps(path, now, []string{"blog", "identity"}, users); err != nil {
		t.Fatal(err)
	}
	first, _ := Read(path)
	if err := EnsureApps(path, now, []string{"blog", "identity"}, users); err != nil {
		t.Fatal(err)
	}
	again, _ := Read(path)
	if first["kafka-blog"]["password"] == "" || first["kafka-blog"]["password"] != again["kafka-blog"]["password"] ||
		first[eventsig.SigningSecret("blog")][eventsig.KeySetField] != again[eventsig.SigningSecret("blog")][eventsig.KeySetField] {
		t.Fatal("EnsureApps changed what existed, or made nothing")
	}
	public := func(f File, app string) map[string]bool {
		var set token.JWKS
		if err := json.Unmarshal([]byte(f[eventsig.PublicKeysSecret][app]), &set); err != nil {
			t.Fatal(err)
		}
		kids := map[string]bool{}
		for _, k := range set.Keys {
			kids[k.Kid] = true
		}
		return kids
	}
	ks, _ := token.ParseKeySet([]byte(first[eventsig.SigningSecret("blog")][eventsig.KeySetField]))
	old, _ := ks.Signing()
	if got := public(first, "blog"); len(got) != 1 || !got[old.ID] {
		t.Fatalf("blog's public keys %v, want its key %s", got, old.ID)
	}
	if len(public(first, "identity")) != 1 {
		t.Fatal("identity has no public key")
	}
	added, _, err := RotateEventKey(path, "blog", now.Add(time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := Read(path)
	if got := public(rotated, "blog"); len(got) != 2 || !got[old.ID] || !got[added] {
		t.Errorf("after rotation blog's public keys are %v, want %s and %s", got, old.ID, added)
	}
	ks, _ = token.ParseKeySet([]byte(rotated[eventsig.SigningSecret("blog")][eventsig.KeySetField]))
	if k, _ := ks.Signing(); k.ID != added {
		t.Errorf("signing with %s after rotation, want %s", k.ID, added)
	}
}
