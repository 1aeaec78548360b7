package manifest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// errOutside says a path a manifest names leaves the repository.
var errOutside = errors.New("leaves the repository")

// inRepo checks that rel, a path a manifest names (relative to the repository root), stays
// inside root: lexically (no absolute path, no ".." above the root) and, for what exists,
// after following symbolic links. A manifest must not make goplt read, build or mount files
// from elsewhere on the machine.
func inRepo(root, rel string) error {
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%s is absolute: %w", rel, errOutside)
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) && filepath.Clean(rel) != "." {
		return fmt.Errorf("%s %w", rel, errOutside)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil // no repository on disk (tests of the rules alone): the lexical check holds
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return nil // does not exist (yet): the rules for that path say so
	}
	if r, err := filepath.Rel(realRoot, real); err != nil || !filepath.IsLocal(r) && r != "." {
		return fmt.Errorf("%s resolves to %s, which %w", rel, real, errOutside)
	}
	return nil
}
