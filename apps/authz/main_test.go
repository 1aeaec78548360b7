package main

import (
	"testing"

	"github.com/goplt/goplt/apps/authz/authz"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/authz.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(authz.New()); err != nil {
		t.Fatal(err)
	}
}
