package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	auth "github.com/goplt/goplt/apps/auth/client"
	identity "github.com/goplt/goplt/apps/identity/client"
	"github.com/goplt/goplt/internal/token"
)

// Hostile input against every public identity and auth endpoint: each gets a 4xx with a
// stable code, and no user is written.
func TestHostileInput(t *testing.T) {
	needStack(t)
	u, _ := newUser(t)
	big := strings.Repeat("a", 1<<20)
	reg := func(email, pw, name string) string {
		b, _ := json.Marshal(map[string]string{"email": email, "password": pw, "displayName": name})
		return string(b)
	}
	const okPW = "long enough password"
	cases := []struct {
		name, app, method, path, body string
		status                        int
		code                          string
	}{
		{"malformed JSON", "identity", "POST", "/users", `{"email":`, 400, "invalid_json"},
		{"not an object", "identity", "POST", "/users", `[1,2,3]`, 400, "invalid_json"},
		{"trailing data", "identity", "POST", "/users", reg("a@example.com", okPW, "") + `{}`, 400, "invalid_json"},
		{"unknown field", "identity", "POST", "/users", `{"email":"a@example.com","password":"long enough password","admin":true}`, 400, "invalid_json"},
		{"wrong type", "identity", "POST", "/users", `{"email":42,"password":"long enough password"}`, 400, "invalid_json"},
		{"oversize body", "identity", "POST", "/users", `{"email":"a@example.com","password":"` + big + `"}`, 413, "body_too_large"},
		{"1 MB password at login", "auth", "POST", "/login", `{"email":"a@example.com","password":"` + big + `"}`, 413, "body_too_large"},
		{"password over the bound", "identity", "POST", "/users", reg("a@example.com", strings.Repeat("p", 257), ""), 400, "invalid_password"},
		{"password over the bound at login", "auth", "POST", "/login", fmt.Sprintf(`{"email":"a@example.com","password":%q}`, strings.Repeat("p", 257)), 400, "invalid_password"},
		{"short password", "identity", "POST", "/users", reg("a@example.com", "short", ""), 400, "invalid_password"},
		{"NUL in password", "identity", "POST", "/users", reg("a@example.com", "long enough\x00password", ""), 400, "invalid_password"},
		{"SQL in email", "identity", "POST", "/users", reg("a'; DROP TABLE users;--@example.com", okPW, ""), 400, "invalid_email"},
		{"SQL in email at login", "auth", "POST", "/login", `{"email":"' OR 1=1 --","password":"x' OR '1'='1"}`, 401, "invalid_credentials"},
		{"SQL in display name", "identity", "POST", "/users", reg("", okPW, "Robert'); DROP TABLE users;--"), 400, "invalid_email"},
		{"Cyrillic look-alike email", "identity", "POST", "/users", reg("\u0430dmin@example.com", okPW, ""), 400, "invalid_email"},
		{"look-alike domain", "identity", "POST", "/users", reg("admin@ex\u0430mple.com", okPW, ""), 400, "invalid_email"},
		{"full-width form of an existing email", "identity", "POST", "/users", reg(toFullWidth(u.Email), okPW, ""), 409, "email_taken"},
		{"upper-case form of an existing email", "identity", "POST", "/users", reg(strings.ToUpper(u.Email), okPW, ""), 409, "email_taken"},
		{"zero-width joiner in email", "identity", "POST", "/users", reg("ad\u200dmin@example.com", okPW, ""), 400, "invalid_email"},
		{"control character in name", "identity", "POST", "/users", reg("ctl@example.com", okPW, "bad\u0007name"), 400, "invalid_display_name"},
		{"overlong name", "identity", "POST", "/users", reg("long@example.com", okPW, strings.Repeat("n", 101)), 400, "invalid_display_name"},
		{"bad user id", "identity", "GET", "/users/1%20OR%201=1", "", 400, "invalid_id"},
		{"SQL in id", "identity", "GET", "/users/'%3B%20DROP%20TABLE%20users%3B--", "", 400, "invalid_id"},
		{"bad cursor", "identity", "GET", "/users?cursor=abc", "", 400, "invalid_cursor"},
		{"SQL in email filter", "identity", "GET", "/users?email=x'%20OR%20'1'='1", "", 400, "invalid_email"},
		{"bad status filter", "identity", "GET", "/users?status=root", "", 400, "invalid_status"},
		{"limit too big", "identity", "GET", "/users?limit=100000", "", 400, "invalid_limit"},
		{"unknown role", "identity", "PUT", "/users/" + u.ID + "/roles", `{"roles":["root"]}`, 400, "unknown_role"},
		{"SQL in role", "identity", "PUT", "/users/" + u.ID + "/roles", `{"roles":["x'); DELETE FROM user_roles;--"]}`, 400, "unknown_role"},
		{"missing credentials", "auth", "POST", "/login", `{}`, 400, "missing_credentials"},
		{"garbage refresh token", "auth", "POST", "/token/refresh", `{"refreshToken":"' OR 1=1"}`, 401, "invalid_refresh_token"},
		{"well-formed unknown refresh token", "auth", "POST", "/token/refresh", `{"refreshToken":"` + strings.Repeat("A", 43) + `"}`, 401, "invalid_refresh_token"},
		{"malformed JSON at refresh", "auth", "POST", "/token/refresh", `{"refreshToken":`, 400, "invalid_json"},
	}
	before := countUsers(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := raw(t, tc.app, tc.method, tc.path, tc.body, nil)
			if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
				if len(body) > 300 {
					body = body[:300]
				}
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	if after := countUsers(t); after != before {
		t.Fatalf("hostile input wrote %d user(s)", after-before)
	}
}

// toFullWidth maps ASCII letters and digits to their full-width forms, which NFKC folds back.
func toFullWidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '!' && r <= '~' && r != '@' && r != '.' {
			r += 0xFEE0
		}
		b.WriteRune(r)
	}
	return b.String()
}

// A disabled or deleted user trying to keep or regain access: every old token and session
// stays refused, whatever they try; only a fresh login after re-enabling works.
func TestEndedUsersCannotComeBack(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	id, a := clients()
	strict := verifier(true)
	refusedSoon := func(t *testing.T, raw string, codes ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := strict.Verify(ctx, raw)
			var te *token.Error
			if errors.As(err, &te) && slices.Contains(codes, te.Code) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("strict verifier: %v, want one of %v", err, codes)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("disable then enable at once revives no old token or session", func(t *testing.T) {
		u, pw := newUser(t)
		old := login(t, u.Email, pw)
		if _, err := id.SetStatus(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := id.SetStatus(ctx, u.ID, true); err != nil {
			t.Fatal(err)
		}
		refusedSoon(t, old.AccessToken, token.CodeRevoked, token.CodeStale)
		if _, err := a.Refresh(ctx, old.RefreshToken); !slices.Contains([]string{"session_revoked", "account_disabled"}, errCode(err)) {
			t.Fatalf("old refresh token after re-enabling: %v", err)
		}
		fresh := login(t, u.Email, pw)
		if _, err := strict.Verify(ctx, fresh.AccessToken); err != nil {
			t.Fatalf("a fresh login after re-enabling: %v", err)
		}
	})

	t.Run("a login racing the disabling gets a token that goes stale", func(t *testing.T) {
		u, pw := newUser(t)
		done := make(chan *auth.Tokens)
		go func() {
			tok, err := a.Login(ctx, u.Email, pw, "")
			if err != nil {
				tok = nil // refused: the disabling came first
			}
			done <- tok
		}()
		if _, err := id.SetStatus(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		if tok := <-done; tok != nil {
			refusedSoon(t, tok.AccessToken, token.CodeRevoked, token.CodeStale)
		}
	})

	t.Run("a deleted user's tokens, refresh and password are refused", func(t *testing.T) {
		u, pw := newUser(t)
		old := login(t, u.Email, pw)
		if status, body := raw(t, "identity", http.MethodDelete, "/users/"+u.ID, "", nil); status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", status, body)
		}
		refusedSoon(t, old.AccessToken, token.CodeRevoked, token.CodeStale)
		if _, err := a.Refresh(ctx, old.RefreshToken); !slices.Contains([]string{"session_revoked", "account_disabled"}, errCode(err)) {
			t.Fatalf("deleted user's refresh: %v", err)
		}
		if _, err := a.Login(ctx, u.Email, pw, ""); errCode(err) != "invalid_credentials" {
			t.Fatalf("deleted user's login: %v", err)
		}
		// Registering again with the same address is a new user: the old tokens stay refused.
		again, err := id.Register(ctx, identity.Registration{Email: u.Email, Password: pw, DisplayName: "Again"})
		if err != nil {
			t.Fatalf("register the address again: %v", err)
		}
		if again.ID == u.ID {
			t.Fatal("the new registration took the deleted user's id")
		}
		refusedSoon(t, old.AccessToken, token.CodeRevoked, token.CodeStale)
	})
}
