// Command echo answers every request with 1 KiB, for tests and benchmarks of sidecar-to-sidecar
// calls. It listens on APP_PORT. POST /slow counts the call, then answers after
// ECHO_SLOW (a duration, default 6s); GET /count says how many /slow calls arrived; GET
// /whoami answers the instance's APP_PORT.
package main

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	body := []byte(strings.Repeat("x", 1024))
	slow := 6 * time.Second
	if d, err := time.ParseDuration(os.Getenv("ECHO_SLOW")); err == nil {
		slow = d
	}
	var calls atomic.Int64
	http.HandleFunc("POST /slow", func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		time.Sleep(slow)
		_, _ = w.Write(body)
	})
	http.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strconv.FormatInt(calls.Load(), 10)))
	})
	http.HandleFunc("GET /whoami", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(os.Getenv("APP_PORT"))) })
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("APP_PORT"), nil); err != nil {
		os.Exit(1)
	}
}
