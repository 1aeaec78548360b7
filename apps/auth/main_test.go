package main

import (
	"testing"

	"github.com/goplt/goplt/apps/auth/auth"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/auth.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(auth.New()); err != nil {
		t.Fatal(err)
	}
}
