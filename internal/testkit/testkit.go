// Package testkit is what a module's tests need to run against the real platform
// (docs/testing.md): it starts, once per test package, the infrastructure and the apps the
// module needs (the module, what it depends on, the gateway and the core services behind it),
// makes users with given roles, calls through the gateway as them, publishes signed events as
// any app and waits until a subscriber has handled them, and reads dead letters.
//
//	var platform *testkit.Platform
//
//	func TestMain(m *testing.M) { testkit.Main(m, &platform, "billing") }
//
//	func TestSomething(t *testing.T) {
//		testkit.Need(t, platform)
//		u := platform.User(t, "billing.customer")
//		r := u.Call(t, "GET", "/billing/subscription", nil)
//		...
//	}
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/bustool"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/runplan"
	"github.com/goplt/goplt/internal/stacktest"
)

// core are the services the gateway needs to admit a user's request: identity (users), auth
// (tokens), authz (decisions).
var core = []string{"identity", "auth", "authz"}

// Platform is a running platform for a module's tests.
type Platform struct {
	Stack *stacktest.Stack
	Group *runner.Group
	// Gateway is the gateway's base URL.
	Gateway string

	bus    bustool.Bus
	set    *manifest.Set
	client *http.Client

	mu      sync.Mutex
	admin   *User
	adminAt time.Time // the administrator's last login
	seq     int
}

// Main is a test package's TestMain. It starts the platform for modules (app ids) into *p,
// runs the tests and stops everything. With -short nothing starts and *p stays nil: tests
// call Need, which skips them.
func Main(m *testing.M, p **Platform, modules ...string) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		pl, err := start(ctx, s, modules)
		if err != nil {
			return nil, err
		}
		*p = pl
		return pl.Group.Stop, nil
	})
}

// Need skips t when the platform is not running (go test -short).
func Need(t testing.TB, p *Platform) {
	t.Helper()
	if p == nil {
		t.Skip("integration test: needs the real platform (run without -short)")
	}
}

func start(ctx context.Context, s *stacktest.Stack, modules []string) (*Platform, error) {
	set, err := manifest.LoadDir(filepath.Join(s.Root, "manifests"), s.Root)
	if err != nil {
		return nil, err
	}
	plan, err := runplan.Load(filepath.Join(s.Root, "deploy", "local", "runplan.yaml"))
	if err != nil {
		return nil, err
	}
	gateway := set.Platform.Spec.Gateway
	keep := map[string]bool{}
	var add func(id string) error
	add = func(id string) error {
		if keep[id] {
			return nil
		}
		a, ok := plan.App(id)
		if !ok {
			return fmt.Errorf("testkit: no app %q in the run plan (run make generate)", id)
		}
		keep[id] = true
		for _, d := range a.DependsOn {
			if err := add(d); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range append(append(slices.Clone(modules), core...), "console") {
		if err := add(id); err != nil {
			return nil, err
		}
	}
	keep[gateway] = true
	var ids []string
	for _, a := range plan.Apps {
		if keep[a.ID] {
			ids = append(ids, a.ID)
		}
	}
	narrowed, err := s.LocalPlan(nil, ids...)
	if err != nil {
		return nil, err
	}
	g, err := s.Run(ctx, narrowed)
	if err != nil {
		return nil, err
	}
	acl, err := brokeracl.Load(filepath.Join(s.Root, brokeracl.LocalFile))
	if err != nil {
		g.Stop()
		return nil, err
	}
	return &Platform{
		Stack: s, Group: g, Gateway: "http://127.0.0.1:" + strconv.Itoa(g.App(gateway).AppPort),
		bus: bustool.Bus{Brokers: s.Endpoints().KafkaBrokers, SecretsFile: s.Endpoints().SecretsFile, ACLs: acl},
		set: set, client: &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// Response is an answer from the gateway.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Code is the error body's stable code ("" for none).
func (r *Response) Code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// Expect fails t unless the answer has the status.
func (r *Response) Expect(t testing.TB, status int, what string) *Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: %d %s, want %d", what, r.Status, r.Body, status)
	}
	return r
}

// Call sends a request through the gateway without a token; body, unless nil, is sent as JSON.
func (p *Platform) Call(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	return p.call(t, method, path, "", body)
}

func (p *Platform) call(t testing.TB, method, path, token string, body any) *Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.Gateway+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// User is a registered, logged-in user.
type User struct {
	ID, Email, Password string
	// Token is the access token of the last login.
	Token string
	p     *Platform
}

// Call sends a request through the gateway with the user's access token.
func (u *User) Call(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	return u.p.call(t, method, path, u.Token, body)
}

// Login logs the user in again: the new token carries the user's roles as they are now.
func (u *User) Login(t testing.TB) {
	t.Helper()
	var tok struct{ AccessToken string }
	u.p.call(t, "POST", "/login", "", map[string]string{"email": u.Email, "password": u.Password}).
		Expect(t, http.StatusOK, "login "+u.Email).JSON(t, &tok)
	u.Token = tok.AccessToken
}

// User registers a new user through the gateway, has the bootstrap administrator grant it
// roles (none: the platform's default roles), and logs it in.
func (p *Platform) User(t testing.TB, roles ...string) *User {
	t.Helper()
	p.mu.Lock()
	p.seq++
	n := p.seq
	p.mu.Unlock()
	u := &User{Email: fmt.Sprintf("testkit-%d-%d@example.com", time.Now().UnixNano(), n), Password: "correct horse battery staple", p: p}
	var out struct{ ID string }
	p.Call(t, "POST", "/users", map[string]string{"email": u.Email, "password": u.Password, "displayName": "Test"}).
		Expect(t, http.StatusCreated, "register").JSON(t, &out)
	u.ID = out.ID
	if len(roles) > 0 {
		p.Admin(t).Call(t, "PUT", "/users/"+u.ID+"/roles", map[string][]string{"roles": roles}).Expect(t, http.StatusOK, "grant roles")
	}
	u.Login(t)
	return u
}

// adminLogin is how long the administrator's token is reused: well inside the access-token
// lifetime, and each login costs an argon2id hash.
const adminLogin = time.Minute

// Admin is the bootstrap administrator, logged in.
func (p *Platform) Admin(t testing.TB) *User {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin == nil {
		f, err := localsecrets.Read(p.Stack.Endpoints().SecretsFile)
		if err != nil {
			t.Fatal(err)
		}
		sec := f[platformsecrets.BootstrapAdmin]
		p.admin = &User{Email: sec["email"], Password: sec["password"], p: p}
	}
	if time.Since(p.adminAt) > adminLogin {
		p.admin.Login(t)
		p.adminAt = time.Now()
	}
	return p.admin
}

// Publish publishes payload (marshalled to JSON) on topic as app would: signed with its key,
// produced as its broker user. It does not check the topic's contract, so tests can send
// what a subscriber must refuse.
func (p *Platform) Publish(t testing.TB, as, topic string, payload any) bustool.Published {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.seq++
	id := fmt.Sprintf("testkit-%d-%d", time.Now().UnixNano(), p.seq)
	p.mu.Unlock()
	pub, err := p.bus.Publish(context.Background(), as, topic, id, b)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// WaitHandled waits until app's subscription has handled ev (its consumer group committed
// past it: handled, dropped or dead-lettered; check the effect, or DeadLetters), or fails t
// after timeout.
func (p *Platform) WaitHandled(t testing.TB, app string, ev bustool.Published, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.bus.WaitHandled(ctx, app, ev, 100*time.Millisecond); err != nil {
		t.Fatalf("%s did not handle the event within %s: %v", app, timeout, err)
	}
}

// DeadLetters returns every event on the dead-letter topics of app's subscriptions (a topic's
// default dead-letter topic is shared by all its subscribers that name none).
func (p *Platform) DeadLetters(t testing.TB, app string) []bustool.Event {
	t.Helper()
	var topics []string
	for _, m := range p.set.Modules {
		if m.Spec.App.ID != app {
			continue
		}
		for _, s := range m.Spec.Events.Subscribes {
			if !slices.Contains(topics, s.DeadLetter()) {
				topics = append(topics, s.DeadLetter())
			}
		}
	}
	if len(topics) == 0 {
		t.Fatalf("app %s subscribes to nothing: it has no dead letters", app)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []bustool.Event
	for _, topic := range topics {
		evs, err := p.bus.Read(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

// Eventually calls check until it returns nil, every 100 ms, failing t with check's last error
// after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
