package main

import (
	"testing"

	"github.com/goplt/goplt/apps/identity/identity"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/identity.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(identity.New()); err != nil {
		t.Fatal(err)
	}
}
