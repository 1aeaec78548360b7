package main

import (
	"testing"

	"github.com/goplt/goplt/apps/audit/audit"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/audit.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(audit.New()); err != nil {
		t.Fatal(err)
	}
}
