package localsecrets

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/token"
)

func TestEnsureAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	now := time.Now()
	c, err := Ensure(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminPassword == "" || len(c.AdminPassword) < 20 || c.SigningKey == "" {
		t.Fatalf("created = %+v", c)
	}
	again, err := Ensure(path, now)
	if err != nil || again != (Created{}) {
		t.Fatalf("second Ensure changed something: %+v %v", again, err)
	}
	added, dropped, err := RotateSigningKey(path, now.Add(time.Minute), time.Hour)
	if err != nil || len(dropped) != 0 {
		t.Fatal(err, dropped)
	}
	f, _ := Read(path)
	ks, err := token.ParseKeySet([]byte(f[platformsecrets.SigningKeys][platformsecrets.SigningKeysField]))
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := ks.Signing(); k.ID != added {
		t.Fatalf("signing %s, want %s", k.ID, added)
	}
	if f[platformsecrets.BootstrapAdmin][platformsecrets.BootstrapAdminPassword] != c.AdminPassword {
		t.Fatal("rotation lost the bootstrap secret")
	}
}
