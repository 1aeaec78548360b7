// Package client is the typed client of the identity service, for other apps: it calls
// identity through the caller's own sidecar. It also defines the service's API and event
// payload types.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/goplt/goplt/internal/invoke"
	"github.com/goplt/goplt/internal/kernel"
)

// AppID is the identity service's Dapr app id.
const AppID = "identity"

// Topics identity publishes.
const (
	TopicUserCreated  = "identity.user.created"
	TopicUserUpdated  = "identity.user.updated"
	TopicUserDisabled = "identity.user.disabled"
	TopicUserDeleted  = "identity.user.deleted"
	TopicRolesChanged = "identity.user.roles.changed"
)

// EventVersion is the payload version of every identity.user.* event identity publishes.
const EventVersion = 2

// User statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// User is a user as the API returns it.
type User struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"displayName"`
	Status      string    `json:"status"`
	Roles       []string  `json:"roles"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// PrincipalVersion is identity's internal count of status and role changes (see
	// Principal.Version); the API does not show it.
	PrincipalVersion int64 `json:"-"`
}

// UserPage is one page of a user listing.
type UserPage struct {
	Users []User `json:"users"`
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string `json:"nextCursor,omitempty"`
}

// Registration is the body of a registration.
type Registration struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName,omitempty"`
}

// Principal is what auth needs to issue tokens: who, in which state, with which roles.
type Principal struct {
	UserID string   `json:"userId"`
	Email  string   `json:"email"`
	Status string   `json:"status"`
	Roles  []string `json:"roles"`
	// Version grows with every change of status or roles; access tokens carry it, and auth's
	// revocation list names the lowest version still good for each recently changed user.
	Version int64 `json:"principalVersion"`
}

// UserEvent is the payload (schema version 2) of identity.user.created, .updated, .disabled
// and .deleted (for deleted only UserID, Version and At are meaningful).
type UserEvent struct {
	Version     int      `json:"version"`
	UserID      string   `json:"userId"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"displayName,omitempty"`
	Status      string   `json:"status,omitempty"`
	Roles       []string `json:"roles"`
	// PrincipalVersion is the user's Principal.Version after the change (for deleted: one
	// past the last).
	PrincipalVersion int64     `json:"principalVersion,omitempty"`
	At               time.Time `json:"at"`
}

// PartitionKey keeps one user's events in order (outbox.Keyed).
func (e UserEvent) PartitionKey() string { return e.UserID }

// DecodeUserEvent reads an identity.user.* event's payload for a subscriber. An event that can
// never be processed (not the payload, or no user id) comes back as kernel.ErrDrop, so the
// handler can return the error as it is.
func DecodeUserEvent(e kernel.Event) (UserEvent, error) {
	var ev UserEvent
	if err := e.Decode(&ev); err != nil {
		return ev, errors.Join(kernel.ErrDrop, err)
	}
	if _, err := uuid.Parse(ev.UserID); err != nil {
		return ev, errors.Join(kernel.ErrDrop, fmt.Errorf("event %s: user id: %w", e.ID, err))
	}
	return ev, nil
}

// UserDeletion tells the kernel how a module learns of deleted users, for
// k.SubscribeDeletions(identity.UserDeletion, path, cleanUp): the kernel then refuses a
// deleted user's tokens and later writes (see kernel.SubscribeDeletions).
var UserDeletion = kernel.SubjectDeletion{
	Topic: TopicUserDeleted,
	Subject: func(e kernel.Event) (string, error) {
		ev, err := DecodeUserEvent(e)
		return ev.UserID, err
	},
}

// RolesChangedEvent is the payload (schema version 2) of identity.user.roles.changed.
type RolesChangedEvent struct {
	Version  int      `json:"version"`
	UserID   string   `json:"userId"`
	Roles    []string `json:"roles"`
	Previous []string `json:"previous"`
	// PrincipalVersion is the user's Principal.Version after the change.
	PrincipalVersion int64     `json:"principalVersion,omitempty"`
	At               time.Time `json:"at"`
}

// Client calls identity through a sidecar.
type Client struct{ c *invoke.Client }

// New returns a client over the caller's sidecar.
func New(c *invoke.Client) *Client { return &Client{c: c} }

// VerifyCredentials checks an email and password (only the auth app may call it). Wrong
// credentials give an *invoke.Error with code invalid_credentials; a disabled account,
// account_disabled.
func (c *Client) VerifyCredentials(ctx context.Context, email, password string) (*Principal, error) {
	var p Principal
	err := c.c.Call(ctx, http.MethodPost, AppID, "/internal/credentials/verify", nil,
		map[string]string{"email": email, "password": password}, &p)
	return &p, err
}

// Principal returns a user's current status and roles (only the auth app may call it).
func (c *Client) Principal(ctx context.Context, userID string) (*Principal, error) {
	var p Principal
	err := c.c.Call(ctx, http.MethodGet, AppID, "/internal/principals/"+url.PathEscape(userID), nil, nil, &p)
	return &p, err
}

// Register creates a user.
func (c *Client) Register(ctx context.Context, r Registration) (*User, error) {
	var u User
	err := c.c.Call(ctx, http.MethodPost, AppID, "/users", nil, r, &u)
	return &u, err
}

// Get returns a user.
func (c *Client) Get(ctx context.Context, id string) (*User, error) {
	var u User
	err := c.c.Call(ctx, http.MethodGet, AppID, "/users/"+url.PathEscape(id), nil, nil, &u)
	return &u, err
}

// SetRoles replaces a user's roles.
func (c *Client) SetRoles(ctx context.Context, id string, roles []string) (*User, error) {
	var u User
	err := c.c.Call(ctx, http.MethodPut, AppID, "/users/"+url.PathEscape(id)+"/roles", nil, map[string][]string{"roles": roles}, &u)
	return &u, err
}

// SetStatus disables (false) or enables (true) a user.
func (c *Client) SetStatus(ctx context.Context, id string, enabled bool) (*User, error) {
	action := "/disable"
	if enabled {
		action = "/enable"
	}
	var u User
	err := c.c.Call(ctx, http.MethodPost, AppID, "/users/"+url.PathEscape(id)+action, nil, nil, &u)
	return &u, err
}
