package stacktest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/goplt/goplt/internal/runner"
)

// Invoke calls method path on app target through caller's sidecar (Dapr service invocation)
// with a literal body (none when empty), and returns the status, the response headers and
// the body.
func Invoke(t testing.TB, caller *runner.App, target, method, path, body string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, caller.DaprHTTP()+"/v1.0/invoke/"+target+"/method"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("dapr-api-token", caller.DaprAPIToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
