package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	auth "github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/runner"
	"github.com/goplt/goplt/internal/stacktest"
	"github.com/goplt/goplt/internal/token"
)

// One real stack for the package: PostgreSQL, Kafka broker, Consul, Sentry; identity and auth
// with their sidecars; a console sidecar (a dev caller, as the gateway will be) that the tests
// call through.
var (
	stack  *stacktest.Stack
	group  *runner.Group
	topics *stacktest.Topics
)

var allTopics = []string{
	identity.TopicUserCreated, identity.TopicUserUpdated, identity.TopicUserDisabled, identity.TopicUserDeleted, identity.TopicRolesChanged,
	auth.TopicLoginSucceeded, auth.TopicLoginFailed, auth.TopicLoginThrottled, auth.TopicTokenRefreshed, auth.TopicRefreshReused, auth.TopicSessionRevoked,
}

func TestMain(m *testing.M) {
	stacktest.Main(m, func(ctx context.Context, s *stacktest.Stack) (func(), error) {
		plan, err := s.LocalPlan(map[string]map[string]string{
			"auth": {"GOPLT_AUTH_KEY_REFRESH": "1s", "GOPLT_AUTH_ACCESS_TTL": "2m"},
		}, "identity", "auth", "console")
		if err != nil {
			return nil, err
		}
		t, err := s.Consume(allTopics...)
		if err != nil {
			return nil, err
		}
		g, err := s.Run(ctx, plan)
		if err != nil {
			t.Close()
			return nil, err
		}
		stack, group, topics = s, g, t
		return func() { g.Stop(); t.Close() }, nil
	})
}

func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("integration test: needs the real stack (run without -short)")
	}
}

func console() *invoke.Client {
	c := group.App("console")
	return invoke.New(c.HTTPPort, c.DaprAPIToken)
}

func clients() (*identity.Client, *auth.Client) {
	c := console()
	return identity.New(c), auth.New(c)
}

// raw calls app through the console sidecar with a literal body.
func raw(t *testing.T, app, method, path, body string, header http.Header) (int, string) {
	t.Helper()
	status, _, b := stacktest.Invoke(t, group.App("console"), app, method, path, body, header)
	return status, string(b)
}

func errCode(err error) string {
	var ie *invoke.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	if err == nil {
		return "(no error)"
	}
	return err.Error()
}

var userSeq atomic.Int32

// newUser registers a user with a unique email and returns it with its password.
func newUser(t testing.TB) (*identity.User, string) {
	t.Helper()
	id, _ := clients()
	email := fmt.Sprintf("user%d-%d@example.com", time.Now().UnixNano(), userSeq.Add(1))
	pw := "correct horse battery staple"
	u, err := id.Register(context.Background(), identity.Registration{Email: email, Password: pw, DisplayName: "Test User"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return u, pw
}

// login logs in through the console sidecar, failing the test on error.
func login(t testing.TB, email, pw string) *auth.Tokens {
	t.Helper()
	_, a := clients()
	tok, err := a.Login(context.Background(), email, pw, "")
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return tok
}

func verifier(strict bool) *token.Verifier {
	_, a := clients()
	return a.NewVerifier(auth.VerifierOptions{Strict: strict, RevocationMaxAge: time.Millisecond, JWKSMinRefresh: time.Millisecond})
}

func TestBootstrapAdministrator(t *testing.T) {
	needStack(t)
	f, err := localsecrets.Read(stack.Endpoints().SecretsFile)
	if err != nil {
		t.Fatal(err)
	}
	sec := f[platformsecrets.BootstrapAdmin]
	_, a := clients()
	tok, err := a.Login(context.Background(), sec["email"], sec["password"], "")
	if err != nil {
		t.Fatalf("bootstrap administrator cannot log in with the password from the secret: %v", err)
	}
	c, err := verifier(false).Verify(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(c.Roles, "identity.admin") {
		t.Fatalf("administrator roles = %v, want identity.admin", c.Roles)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestLoginRefreshReuseLogout(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	u, pw := newUser(t)
	_, a := clients()
	v := verifier(true)

	t1 := login(t, u.Email, pw)
	c, err := v.Verify(ctx, t1.AccessToken)
	if err != nil {
		t.Fatalf("fresh access token: %v", err)
	}
	if c.Subject != u.ID || c.SessionID != t1.SessionID || c.Issuer != auth.Issuer {
		t.Fatalf("claims = %+v", c)
	}

	// Refresh rotates: a new refresh token, the same session.
	t2, err := a.Refresh(ctx, t1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if t2.RefreshToken == t1.RefreshToken || t2.SessionID != t1.SessionID {
		t.Fatalf("refresh did not rotate: %+v", t2)
	}

	// Presenting the used token again revokes the whole family.
	if _, err := a.Refresh(ctx, t1.RefreshToken); errCode(err) != "refresh_token_reused" {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := a.Refresh(ctx, t2.RefreshToken); errCode(err) != "session_revoked" {
		t.Fatalf("the family's newest token after reuse: %v, want session_revoked", err)
	}
	if _, err := v.Verify(ctx, t2.AccessToken); err == nil || !strings.Contains(err.Error(), token.CodeRevoked) {
		t.Fatalf("strict verifier accepted an access token of a revoked session: %v", err)
	}
	if _, err := topics.Wait(auth.TopicRefreshReused, 30*time.Second, func(e stacktest.CloudEvent) bool {
		return strings.Contains(string(e.Data), t1.SessionID)
	}); err != nil {
		t.Fatalf("reuse not announced: %v", err)
	}

	// Logout ends another session.
	t3 := login(t, u.Email, pw)
	if err := a.Logout(ctx, t3.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh(ctx, t3.RefreshToken); errCode(err) != "session_revoked" {
		t.Fatalf("refresh after logout: %v", err)
	}
	if _, err := v.Verify(ctx, t3.AccessToken); err == nil {
		t.Fatal("strict verifier accepted a logged-out session's access token")
	}
	// A lenient verifier still accepts it until it expires (the documented trade-off).
	if _, err := verifier(false).Verify(ctx, t3.AccessToken); err != nil {
		t.Fatalf("lenient verifier: %v", err)
	}
}

func TestDisabledUserCannotLogIn(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	u, pw := newUser(t)
	id, a := clients()
	t1 := login(t, u.Email, pw)
	if _, err := id.SetStatus(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(ctx, u.Email, pw, ""); errCode(err) != "account_disabled" {
		t.Fatalf("disabled user's login: %v", err)
	}
	// Refused either way: by auth's handling of identity.user.disabled (session_revoked) or,
	// before that, by the refresh's own look at the user (account_disabled).
	if _, err := a.Refresh(ctx, t1.RefreshToken); errCode(err) != "session_revoked" && errCode(err) != "account_disabled" {
		t.Fatalf("disabled user's refresh: %v", err)
	}
	if _, err := id.SetStatus(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(ctx, u.Email, pw, ""); err != nil {
		t.Fatalf("re-enabled user: %v", err)
	}
	if _, err := a.Login(ctx, u.Email, "wrong password here", ""); errCode(err) != "invalid_credentials" {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := a.Login(ctx, "nobody-"+u.Email, pw, ""); errCode(err) != "invalid_credentials" {
		t.Fatalf("unknown user must get the same answer as a wrong password: %v", err)
	}
}

func TestRolesChangeShowsInNextToken(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	u, pw := newUser(t)
	id, a := clients()
	t1 := login(t, u.Email, pw)
	if _, err := id.SetRoles(ctx, u.ID, []string{"identity.viewer", "notes.writer"}); err != nil {
		t.Fatal(err)
	}
	t2, err := a.Refresh(ctx, t1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifier(false).Verify(ctx, t2.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Roles, ",") != "identity.viewer,notes.writer" {
		t.Fatalf("roles after change = %v", c.Roles)
	}
	if _, err := id.SetRoles(ctx, u.ID, []string{"identity.superuser"}); errCode(err) != "unknown_role" {
		t.Fatalf("unknown role: %v", err)
	}
	e, err := topics.Wait(identity.TopicRolesChanged, 30*time.Second, func(e stacktest.CloudEvent) bool {
		return strings.Contains(string(e.Data), u.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev identity.RolesChangedEvent
	// A new user's roles before the change are the platform's default roles.
	defaults := slices.Clone(platform(t).Platform.Spec.DefaultRoles)
	slices.Sort(defaults)
	if err := json.Unmarshal(e.Data, &ev); err != nil || len(ev.Roles) != 2 || !slices.Equal(ev.Previous, defaults) {
		t.Fatalf("roles.changed payload %s (%v), want previous roles %v", e.Data, err, defaults)
	}
}

// platform reads the repository's manifests: the tests' source for settings and contracts.
func platform(t *testing.T) *manifest.Set {
	t.Helper()
	set, err := manifest.LoadDir(filepath.Join(stack.Root, "manifests"), stack.Root)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestCredentialChecksOnlyForAuth(t *testing.T) {
	needStack(t)
	u, pw := newUser(t)
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, u.Email, pw)
	status, resp := raw(t, "identity", http.MethodPost, "/internal/credentials/verify", body, nil)
	if status != http.StatusForbidden || !strings.Contains(resp, "spiffe://public/ns/default/console") {
		t.Fatalf("console calling the credential check: %d %s, want 403 from access control", status, resp)
	}
	status, resp = raw(t, "identity", http.MethodGet, "/internal/principals/"+u.ID, "", nil)
	if status != http.StatusForbidden {
		t.Fatalf("console reading a principal: %d %s", status, resp)
	}
	// Path tricks reach the same operation after the sidecar's normalisation.
	status, _ = raw(t, "identity", http.MethodPost, "/users/../internal/credentials/verify", body, nil)
	if status == http.StatusOK {
		t.Fatal("dot segments reached the credential check")
	}
	status, _ = raw(t, "identity", http.MethodPost, "/INTERNAL/credentials/verify", body, nil)
	if status == http.StatusOK {
		t.Fatal("upper case reached the credential check")
	}
}

// Every event identity and auth declare arrives on its topic as a CloudEvent whose data
// validates against the schema the manifest names.
func TestEventsArriveAsDeclared(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	u, pw := newUser(t)
	id, a := clients()
	if _, err := id.SetStatus(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := id.SetStatus(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(ctx, u.Email, "not the password!", ""); err == nil {
		t.Fatal("wrong password accepted")
	}
	t1 := login(t, u.Email, pw)
	if _, err := a.Refresh(ctx, t1.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := a.Logout(ctx, t1.RefreshToken); err != nil {
		t.Fatal(err)
	}
	status, body := raw(t, "identity", http.MethodDelete, "/users/"+u.ID, "", nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	// Each payload matches the schema its publisher's manifest names for the topic.
	schemas := map[string]string{}
	for _, m := range platform(t).Modules {
		for _, p := range m.Spec.Events.Publishes {
			schemas[p.Topic] = p.Schema
		}
	}
	for _, topic := range []string{
		identity.TopicUserCreated, identity.TopicUserDisabled, identity.TopicUserUpdated, identity.TopicUserDeleted,
		auth.TopicLoginFailed, auth.TopicLoginSucceeded, auth.TopicTokenRefreshed, auth.TopicSessionRevoked,
	} {
		schema := schemas[topic]
		if schema == "" {
			t.Fatalf("no manifest publishes %s", topic)
		}
		e, err := topics.Wait(topic, 30*time.Second, func(e stacktest.CloudEvent) bool {
			return strings.Contains(string(e.Data), u.ID) || strings.Contains(string(e.Data), u.Email)
		})
		if err != nil {
			t.Errorf("%s: %v", topic, err)
			continue
		}
		if e.ID == "" || e.DataContentType != "application/json" {
			t.Errorf("%s: CloudEvent id %q content type %q", topic, e.ID, e.DataContentType)
		}
		if err := stack.ValidateEvent(schema, e.Data); err != nil {
			t.Errorf("%s: payload %s does not match %s: %v", topic, e.Data, schema, err)
		}
	}
	// Exactly once per change in the outbox's eyes: one created event for this user.
	n := 0
	for _, e := range topics.All(identity.TopicUserCreated) {
		if strings.Contains(string(e.Data), u.ID) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d created events for one user", n)
	}
}

// Throttling slows one address guessing one account, but the owner logging in from an
// address the account has used before is not locked out.
func TestBruteForceBackoff(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	u, pw := newUser(t)
	_, a := clients()
	const owner, attacker = "192.0.2.10", "198.51.100.66"
	if _, err := a.Login(ctx, u.Email, pw, owner); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := a.Login(ctx, u.Email, fmt.Sprintf("guess number %d!", i), attacker); errCode(err) != "invalid_credentials" {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	hdr := http.Header{"X-Forwarded-For": {attacker}}
	status, body := rawWithRetryAfter(t, hdr, u.Email, "guess number 6!")
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too_many_attempts") {
		t.Fatalf("sixth guess: %d %s, want 429 too_many_attempts", status, body)
	}
	// Even the right password is refused from the throttled address for now ...
	if _, err := a.Login(ctx, u.Email, pw, attacker); errCode(err) != "too_many_attempts" {
		t.Fatalf("right password from the throttled address: %v", err)
	}
	// ... but the owner, from their usual address, gets in.
	if _, err := a.Login(ctx, u.Email, pw, owner); err != nil {
		t.Fatalf("owner locked out: %v", err)
	}
	if _, err := topics.Wait(auth.TopicLoginThrottled, 30*time.Second, func(e stacktest.CloudEvent) bool {
		return strings.Contains(string(e.Data), attacker)
	}); err != nil {
		t.Fatal(err)
	}
}

func rawWithRetryAfter(t *testing.T, hdr http.Header, email, pw string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, pw)
	status, h, b := stacktest.Invoke(t, group.App("console"), "auth", http.MethodPost, "/login", body, hdr)
	if status == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	return status, string(b)
}

// Rotation: a new key signs, the old key's tokens still verify during the overlap, and a
// verifier learns the new kid by itself (refetch on unknown kid).
func TestKeyRotation(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	u, pw := newUser(t)
	_, a := clients()
	v := verifier(false)
	before := login(t, u.Email, pw)
	if _, err := v.Verify(ctx, before.AccessToken); err != nil {
		t.Fatal(err)
	}
	added, _, err := localsecrets.RotateSigningKey(stack.Endpoints().SecretsFile, time.Now(), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The local file secret store reads its file at start: restart auth's sidecar (the
	// runner brings it back), as docs/auth.md tells operators to.
	restartSidecar(t, "auth")
	deadline := time.Now().Add(60 * time.Second)
	var after *auth.Tokens
	for {
		after, err = a.Login(ctx, u.Email, pw, "")
		if err == nil && kidOf(after.AccessToken) == added {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token signed with the new key %s within 60s (last: %v)", added, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, after.AccessToken); err != nil {
		t.Fatalf("new key's token: %v", err)
	}
	if _, err := v.Verify(ctx, before.AccessToken); err != nil {
		t.Fatalf("old key's token during the overlap: %v", err)
	}
	set, err := a.JWKS(ctx)
	if err != nil || len(set.Keys) < 2 {
		t.Fatalf("JWKS during the overlap: %+v %v", set, err)
	}
}

func kidOf(raw string) string {
	head, _, _ := strings.Cut(raw, ".")
	b, _ := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

func restartSidecar(t *testing.T, id string) {
	t.Helper()
	app := group.App(id)
	old := app.Sidecar()
	if err := old.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for app.Sidecar() == old || !healthy(app) {
		if time.Now().After(deadline) {
			t.Fatalf("%s sidecar not back within 60s", id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func healthy(a *runner.App) bool {
	resp, err := http.Get(a.DaprHTTP() + "/v1.0/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

func countUsers(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM identity.users`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkLogin is a whole login as a client of the console sidecar sees it: sidecar ->
// auth (throttle check, session and outbox rows) -> identity (argon2id verification at the
// OWASP parameters) -> signed token. Argon2id dominates by design.
func BenchmarkLogin(b *testing.B) {
	if stack == nil {
		b.Skip("needs the real stack")
	}
	u, pw := newUser(b)
	_, a := clients()
	ctx := context.Background()
	for b.Loop() {
		if _, err := a.Login(ctx, u.Email, pw, ""); err != nil {
			b.Fatal(err)
		}
	}
}
