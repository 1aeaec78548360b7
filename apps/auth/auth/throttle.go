package auth

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The brute-force defence. Failed logins are counted under three keys; past a key's
// threshold, each further failure doubles the wait before the next attempt under that key, up
// to a cap. So:
//   - one address guessing one account is slowed after 5 failures (pair key);
//   - one address spraying many accounts is slowed after 20 (ip key);
//   - many addresses guessing one account are slowed after 20 (account key), but an address
//     the account has logged in from before is exempt from that key, so an attacker cannot
//     keep the owner out; and every wait is capped, so no lockout is permanent.
//
// Counters start over after an hour without failures. Keys use the normalized email whether
// or not such a user exists, so throttling reveals nothing about which accounts exist.
type rule struct {
	prefix    string
	threshold int
	cap       time.Duration
}

var (
	pairRule    = rule{"pair:", 5, 15 * time.Minute}
	ipRule      = rule{"ip:", 20, 15 * time.Minute}
	accountRule = rule{"acct:", 20, 5 * time.Minute}
)

// counterReset is how long without failures clears a counter.
const counterReset = time.Hour

// backoff is the wait after the n-th failure under r.
func (r rule) backoff(n int) time.Duration {
	if n < r.threshold {
		return 0
	}
	shift := n - r.threshold
	if shift > 20 {
		return r.cap
	}
	return min(time.Second<<shift, r.cap)
}

type throttleKeys struct {
	pair, ip, account string
}

func keysFor(email, ip string) throttleKeys {
	return throttleKeys{pair: pairRule.prefix + email + "|" + ip, ip: ipRule.prefix + ip, account: accountRule.prefix + email}
}

// blockedFor returns how long the attempt must wait (0: go ahead) and whether the address is
// a known client of the account (exempt from the account-wide key).
func (m *Module) blockedFor(ctx context.Context, k throttleKeys, email, ip string) (time.Duration, bool, error) {
	var known bool
	if err := m.k.DB().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM known_clients WHERE email = $1 AND ip = $2)`, email, ip).Scan(&known); err != nil {
		return 0, false, err
	}
	keys := []string{k.pair, k.ip}
	if !known {
		keys = append(keys, k.account)
	}
	var until *time.Time
	err := m.k.DB().QueryRow(ctx, `SELECT max(blocked_until) FROM login_throttle
		WHERE key = ANY($1) AND blocked_until > now()`, keys).Scan(&until)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, known, err
	}
	if until == nil {
		return 0, known, nil
	}
	return time.Until(*until), known, nil
}

// recordFailure counts a failed attempt under every key (in tx).
func recordFailure(ctx context.Context, tx pgx.Tx, k throttleKeys, exemptAccount bool) error {
	for _, x := range []struct {
		key string
		r   rule
	}{{k.pair, pairRule}, {k.ip, ipRule}, {k.account, accountRule}} {
		if x.key == k.account && exemptAccount {
			continue
		}
		var n int
		err := tx.QueryRow(ctx, `INSERT INTO login_throttle AS t (key, failures, last_failure) VALUES ($1, 1, now())
			ON CONFLICT (key) DO UPDATE SET
				failures = CASE WHEN t.last_failure < now() - make_interval(secs => $2) THEN 1 ELSE t.failures + 1 END,
				last_failure = now()
			RETURNING failures`, x.key, counterReset.Seconds()).Scan(&n)
		if err != nil {
			return err
		}
		if d := x.r.backoff(n); d > 0 {
			if _, err := tx.Exec(ctx, `UPDATE login_throttle SET blocked_until = now() + make_interval(secs => $2) WHERE key = $1`, x.key, d.Seconds()); err != nil {
				return err
			}
		}
	}
	return nil
}
