package main

import (
	"testing"

	"github.com/goplt/goplt/apps/notes/notes"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/notes.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(notes.New()); err != nil {
		t.Fatal(err)
	}
}
