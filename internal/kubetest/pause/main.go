// Command pause is the pod sandbox's process for the tests' real kubelet: it holds the pod's
// namespaces open, reaps the zombies it inherits as PID 1, and exits on SIGINT or SIGTERM.
// The tests build it into a local image because nothing can be pulled from a public registry
// (Kubernetes' own pause image is a few lines of C doing the same).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
