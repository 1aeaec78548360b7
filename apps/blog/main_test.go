package main

import (
	"testing"

	"github.com/goplt/goplt/apps/blog/blog"
	"github.com/goplt/goplt/internal/kernel"
)

// The handlers Init registers are exactly the routes of manifests/blog.yaml.
func TestDeclarationsMatchTheManifest(t *testing.T) {
	if err := kernel.Check(blog.New()); err != nil {
		t.Fatal(err)
	}
}
