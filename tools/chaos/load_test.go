package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/platformsecrets"
)

// call sends a JSON request through the gateway.
func call(method, path, bearer string, body any) (int, []byte, error) {
	return callHeaders(method, path, bearer, body, nil)
}

// callHeaders is call with extra headers (name, value, ...).
func callHeaders(method, path, bearer string, body any, hdr []string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func login(t *testing.T, email, password string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		status, b, err := call("POST", "/login", "", map[string]string{"email": email, "password": password})
		var tok struct{ AccessToken string }
		if err == nil && status == http.StatusOK && json.Unmarshal(b, &tok) == nil {
			return tok.AccessToken
		}
		if attempt == 20 {
			t.Fatalf("login %s: %d %v %s", email, status, err, b)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// reader is the gateway load: authenticated reads of one note, through the gateway, authz and
// one of notes' replicas.
type reader struct {
	t           *testing.T
	email, note string
	password    string
}

const readerPassword = "correct horse battery staple"

// adminToken is the bootstrap administrator's, set by newReader.
var adminToken string

// grantWriter gives a user notes.writer.
func grantWriter(t *testing.T, id string) {
	if status, b, err := call("PUT", "/users/"+id+"/roles", adminToken, map[string][]string{"roles": {"notes.writer"}}); err != nil || status != http.StatusOK {
		t.Fatalf("grant notes.writer: %d %v %s", status, err, b)
	}
}

func newReader(t *testing.T) *reader {
	f, err := localsecrets.Read(stack.Endpoints().SecretsFile)
	if err != nil {
		t.Fatal(err)
	}
	sec := f[platformsecrets.BootstrapAdmin]
	admin := login(t, sec["email"], sec["password"])
	adminToken = admin
	r := &reader{t: t, email: fmt.Sprintf("chaos-reader-%d@example.com", time.Now().UnixNano()), password: readerPassword}
	id, ok := createUser(r.email)
	if !ok {
		t.Fatal("cannot register the reader")
	}
	grantWriter(t, id)
	tok := login(t, r.email, r.password)
	status, b, err := call("POST", "/notes", tok, map[string]string{"text": "read under fire"})
	var n struct{ ID string }
	if err != nil || status != http.StatusCreated || json.Unmarshal(b, &n) != nil {
		t.Fatalf("create the note: %d %v %s", status, err, b)
	}
	r.note = n.ID
	return r
}

// retryBudget is how many times a client retries a failed read (after 200 ms, then 400 ms).
const retryBudget = 2

// load reads the note at rate per second until ctx ends: reqs counts requests, firstErrs those
// whose first try failed, errs those that still failed after the retry budget.
func (r *reader) load(ctx context.Context, rate int, reqs, firstErrs, errs *atomic.Int64) {
	tok := login(r.t, r.email, r.password)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				reqs.Add(1)
				for attempt := 0; attempt <= retryBudget; attempt++ {
					status, _, err := call("GET", "/notes/"+r.note, tok, nil)
					if err == nil && status == http.StatusOK {
						return
					}
					if attempt == 0 {
						firstErrs.Add(1)
					}
					time.Sleep(time.Duration(200<<attempt) * time.Millisecond)
				}
				errs.Add(1)
			}()
		}
	}
	wg.Wait()
}

// createUser registers a user through the gateway (its rate limits are raised for the suite)
// and returns its id when identity confirmed it.
func createUser(email string) (string, bool) {
	status, b, err := call("POST", "/users", "", map[string]string{"email": email, "password": readerPassword, "displayName": "Chaos"})
	var u struct{ ID string }
	if err != nil || status != http.StatusCreated || json.Unmarshal(b, &u) != nil || u.ID == "" {
		return "", false
	}
	return u.ID, true
}

func printTable(t *testing.T, rs []result, eventRate, reqRate int) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nChaos suite: steady load %d events/s into audit, %d req/s through the gateway (retry budget %d)\n\n", eventRate, reqRate, retryBudget)
	fmt.Fprintf(&b, "| fault | events sent | received | lost | duplicates | users | users lost | user duplicates | chain | requests | failed first try | failed after retries | notes written (key retried until 201) | notes lost | notes duplicated | recovery |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		chain := "verifies"
		if !r.chainOK {
			chain = "BROKEN"
		}
		users, ul, ud := "-", "-", "-"
		if r.users > 0 || r.usersLost > 0 {
			users, ul, ud = fmt.Sprint(r.users), fmt.Sprint(r.usersLost), fmt.Sprint(r.usersDups)
		}
		writes, wl, wd := "-", "-", "-"
		if r.writes.keys > 0 {
			writes = fmt.Sprintf("%d of %d", r.writes.acked, r.writes.keys)
			wl, wd = fmt.Sprint(r.writesLost), fmt.Sprint(r.writesDups)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %d | %d | %d | %s | %s | %s | %.1f s |\n",
			r.fault, r.sent, r.received, r.lost, r.dups, users, ul, ud, chain, r.reqs, r.firstTryErrs, r.errs, writes, wl, wd, r.recover.Seconds())
	}
	fmt.Print(b.String()) // shown with -v (make chaos), and with a failure
}
