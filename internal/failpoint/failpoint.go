// Package failpoint crashes the process at a named point of a protocol, for the chaos suite:
// GOPLT_FAILPOINT=<name>@<marker file>[,<name>@<marker file>...] makes Hit(name) SIGKILL the
// process when it is reached and the marker file does not exist; it creates the file first, so
// the restarted process goes on. A test arms a point at any time by removing its marker (made
// before the app started). Unset, Hit costs one environment lookup.
package failpoint

import (
	"os"
	"strings"
	"syscall"

	"github.com/goplt/goplt/internal/envvar"
)

// Env is the variable that arms a failpoint.
const Env = envvar.Failpoint

// Hit crashes the process if the failpoint name is armed and has not fired yet.
func Hit(name string) {
	v := os.Getenv(Env)
	if v == "" {
		return
	}
	for _, armed := range strings.Split(v, ",") {
		point, marker, ok := strings.Cut(armed, "@")
		if !ok || point != name || marker == "" {
			continue
		}
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return // fired before (or the marker cannot be made: never crash twice)
		}
		f.Close()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it
	}
}
