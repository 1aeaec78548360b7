// Package client is the typed client of the auth service, for other apps (through the
// caller's own sidecar), and the access-token verifier the gateway and the kernel use: JWKS
// and the revocation list are fetched through the sidecar and cached.
package client

import (
	"context"
	"net/http"
	"time"

	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/token"
)

// AppID is the auth service's Dapr app id.
const AppID = "auth"

// Issuer and Audience of access tokens.
const (
	Issuer   = "goplt-auth"
	Audience = "goplt"
)

// Security event topics.
const (
	TopicLoginSucceeded = "auth.login.succeeded"
	TopicLoginFailed    = "auth.login.failed"
	TopicLoginThrottled = "auth.login.throttled"
	TopicTokenRefreshed = "auth.token.refreshed"
	TopicRefreshReused  = "auth.refresh.reused"
	TopicSessionRevoked = "auth.session.revoked"
)

// SecurityEvent is the payload (schema version 1) of every auth.* topic.
type SecurityEvent struct {
	Version   int       `json:"version"`
	UserID    string    `json:"userId,omitempty"`
	Email     string    `json:"email,omitempty"`
	SessionID string    `json:"sessionId,omitempty"`
	IP        string    `json:"ip"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// Tokens is the answer to a login or a refresh.
type Tokens struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"` // "Bearer"
	ExpiresIn    int    `json:"expiresIn"` // seconds
	RefreshToken string `json:"refreshToken"`
	SessionID    string `json:"sessionId"`
}

// Revocations is the answer of GET /revocations: sessions revoked, and subjects whose older
// tokens are stale, recently enough that such access tokens may still be unexpired.
type Revocations = token.Revocations

// Client calls auth through a sidecar.
type Client struct{ c *invoke.Client }

// New returns a client over the caller's sidecar.
func New(c *invoke.Client) *Client { return &Client{c: c} }

// Login exchanges an email and password for tokens. clientIP is forwarded for throttling
// (the gateway sets it from the connection).
func (c *Client) Login(ctx context.Context, email, password, clientIP string) (*Tokens, error) {
	var t Tokens
	h := http.Header{}
	if clientIP != "" {
		h.Set("X-Forwarded-For", clientIP)
	}
	err := c.c.Call(ctx, http.MethodPost, AppID, "/login", h, map[string]string{"email": email, "password": password}, &t)
	return &t, err
}

// Refresh rotates a refresh token.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	var t Tokens
	err := c.c.Call(ctx, http.MethodPost, AppID, "/token/refresh", nil, map[string]string{"refreshToken": refreshToken}, &t)
	return &t, err
}

// Logout revokes the session of a refresh token.
func (c *Client) Logout(ctx context.Context, refreshToken string) error {
	return c.c.Call(ctx, http.MethodPost, AppID, "/logout", nil, map[string]string{"refreshToken": refreshToken}, nil)
}

// JWKS fetches the public signing keys.
func (c *Client) JWKS(ctx context.Context) (token.JWKS, error) {
	var s token.JWKS
	err := c.c.Call(ctx, http.MethodGet, AppID, "/.well-known/jwks.json", nil, nil, &s)
	return s, err
}

// Revocations fetches the recent revocations.
func (c *Client) Revocations(ctx context.Context) (Revocations, error) {
	var r Revocations
	err := c.c.Call(ctx, http.MethodGet, AppID, "/revocations", nil, nil, &r)
	return r, err
}

// VerifierOptions tune NewVerifier.
type VerifierOptions struct {
	// Strict consults the revocation list on every verification (cached for RevocationMaxAge),
	// so the tokens of a logged-out session, or of a user disabled, deleted or given other
	// roles, stop working before they expire.
	Strict           bool
	RevocationMaxAge time.Duration // default 5s
	// JWKSMaxAge bounds how long a fetched key set is used; default 10 minutes.
	JWKSMaxAge time.Duration
	// JWKSMinRefresh is the least time between refetches caused by unknown kids; default 10s.
	JWKSMinRefresh time.Duration
}

// NewVerifier returns a verifier of auth's access tokens that fetches keys (and, when strict,
// revocations) through the caller's sidecar.
func (c *Client) NewVerifier(o VerifierOptions) *token.Verifier {
	if o.JWKSMaxAge == 0 {
		o.JWKSMaxAge = 10 * time.Minute
	}
	if o.JWKSMinRefresh == 0 {
		o.JWKSMinRefresh = 10 * time.Second
	}
	if o.RevocationMaxAge == 0 {
		o.RevocationMaxAge = 5 * time.Second
	}
	v := &token.Verifier{
		Issuer: Issuer, Audience: Audience, Leeway: 5 * time.Second,
		Keys: token.NewJWKSCache(c.JWKS, o.JWKSMaxAge, o.JWKSMinRefresh),
	}
	if o.Strict {
		v.Revocations = token.NewRevocationCache(c.Revocations, o.RevocationMaxAge)
	}
	return v
}
