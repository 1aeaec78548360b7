// Command echo answers every request with 1 KiB, for benchmarks of sidecar-to-sidecar calls.
// It listens on APP_PORT and says ready on /readyz.
package main

import (
	"net/http"
	"os"
	"strings"
)

func main() {
	body := []byte(strings.Repeat("x", 1024))
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("APP_PORT"), nil); err != nil {
		os.Exit(1)
	}
}
