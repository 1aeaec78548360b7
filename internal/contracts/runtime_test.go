package contracts

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// platformSet holds two of the platform's own event schemas with payloads as their
// publishers write them.
func platformSet(tb testing.TB) (Set, map[string][]byte) {
	tb.Helper()
	read := func(name string) string {
		b, err := os.ReadFile("../../schemas/events/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		return string(b)
	}
	set := Set{Publishes: map[string]EventSchema{
		"identity.user.created": {Version: 1, Schema: read("identity.user.v1.json")},
		"auth.login.failed":     {Version: 1, Schema: read("auth.security.v1.json")},
	}}
	set.Subscribes = map[string][]EventSchema{"identity.user.created": {set.Publishes["identity.user.created"]}}
	payloads := map[string][]byte{
		"identity.user.created": []byte(`{"version":1,"userId":"7c9e6679-7425-40de-944b-e07fc1f90ae7","email":"ann@example.com","displayName":"Ann","status":"active","roles":["blog.editor","billing.customer"],"at":"2026-12-02T10:00:00.123456Z"}`),
		"auth.login.failed":     []byte(`{"version":1,"email":"ann@example.com","ip":"192.0.2.1","reason":"invalid_credentials","at":"2026-12-02T10:00:00.123456Z"}`),
	}
	return set, payloads
}

func TestChecker(t *testing.T) {
	set, payloads := platformSet(t)
	c, err := set.Checker()
	if err != nil {
		t.Fatal(err)
	}
	for topic, p := range payloads {
		if err := c.Outgoing(topic, p); err != nil {
			t.Errorf("%s: %v", topic, err)
		}
	}
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"undeclared": {c.Outgoing("identity.user.renamed", []byte(`{}`)), "not a topic the manifest publishes"},
		"bad uuid":   {c.Outgoing("identity.user.created", []byte(`{"version":1,"userId":"x","roles":[],"at":"2026-12-02T10:00:00Z"}`)), "uuid"},
		"not json":   {c.Outgoing("auth.login.failed", []byte(`{`)), "not JSON"},
		"v2 unread":  {c.Incoming("identity.user.created", []byte(`{"version":2}`)), "payload version 2"},
	} {
		if !errors.Is(tc.err, ErrContract) || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want a contract error with %q", name, tc.err, tc.want)
		}
	}
	if err := c.Incoming("external.topic", []byte(`"anything"`)); err != nil {
		t.Errorf("a topic without a contract: %v", err)
	}
}

// The cost of holding a platform event to its contract, per publish (goal <= 20 us).
func BenchmarkCheck(b *testing.B) {
	set, payloads := platformSet(b)
	c, err := set.Checker()
	if err != nil {
		b.Fatal(err)
	}
	for _, topic := range []string{"identity.user.created", "auth.login.failed"} {
		b.Run(topic, func(b *testing.B) {
			for b.Loop() {
				if err := c.Outgoing(topic, payloads[topic]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
