// Package repo locates the goplt repository a command or test runs in.
package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the Go module path of the goplt repository.
const ModulePath = "github.com/goplt/goplt"

// Root walks up from dir to the folder holding goplt's go.mod.
func Root(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module "+ModulePath+"\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s at or above %s: run goplt from inside the goplt repository", ModulePath, dir)
		}
	}
}

// RootFromWd is Root from the working directory.
func RootFromWd() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return Root(wd)
}
