package billing_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/goplt/goplt/apps/billing/billing"
	"github.com/goplt/goplt/internal/testkit"
)

// The real platform for billing: infrastructure, billing with what it depends on, the gateway
// and the core services behind it (docs/testing.md).
var platform *testkit.Platform

func TestMain(m *testing.M) { testkit.Main(m, &platform, "billing") }

// A new user gets the free plan: identity's identity.user.created reaches billing through the
// broker, and the user reads it through the gateway.
func TestNewUserGetsTheFreePlan(t *testing.T) {
	testkit.Need(t, platform)
	u := platform.User(t, "billing.customer")
	testkit.Eventually(t, 30*time.Second, "the free plan", func() error {
		r := u.Call(t, "GET", "/billing/subscription", nil)
		if r.Status != http.StatusOK {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		var s billing.Subscription
		r.JSON(t, &s)
		if s.PlanID != billing.FreePlan || s.UserID != u.ID {
			return fmt.Errorf("subscription %+v", s)
		}
		return nil
	})
	platform.Call(t, "GET", "/billing/subscription", nil).Expect(t, http.StatusUnauthorized, "anonymous")
	platform.Call(t, "GET", "/billing/plans", nil).Expect(t, http.StatusOK, "public plans")
}

// A signed identity.user.created in a payload version billing does not read is handled by
// being dead-lettered, never by a subscription.
func TestUnreadableEventIsDeadLettered(t *testing.T) {
	testkit.Need(t, platform)
	var b [16]byte
	_, _ = rand.Read(b[:])
	user := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	ev := platform.Publish(t, "identity", "identity.user.created", map[string]any{"version": 9, "userId": user})
	platform.WaitHandled(t, "billing", ev, 30*time.Second)
	testkit.Eventually(t, 15*time.Second, "the dead letter", func() error {
		for _, d := range platform.DeadLetters(t, "billing") {
			if d.ID == ev.ID {
				return nil
			}
		}
		return fmt.Errorf("event %s not among billing's dead letters", ev.ID)
	})
}
