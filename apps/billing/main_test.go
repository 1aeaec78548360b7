package main

import (
	"testing"

	"github.com/goplt/goplt/apps/billing/billing"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/billing.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(billing.New()); err != nil {
		t.Fatal(err)
	}
}
