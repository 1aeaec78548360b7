// Package emailaddr normalizes email addresses, the form uniqueness and throttling are decided on.
package emailaddr

import (
	"errors"
	"regexp"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// maxEmail is RFC 5321's limit on a forward path.
const maxEmail = 254

var emailRE = regexp.MustCompile(`^[a-z0-9.!#$%&'*+/=?^_{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$`)

// ErrInvalid explains what a valid address is.
var ErrInvalid = errors.New("email must be an ASCII address like name@example.com (international domains in punycode, xn--...)")

// Normalize returns the canonical form of an address, the one uniqueness is decided on:
// NFKC (so full-width and other compatibility forms fold to ASCII), trimmed, lower case. What
// is still not ASCII afterwards is refused, which closes the door on look-alike addresses
// (Cyrillic "а" for Latin "a" and the like) instead of trying to enumerate confusables.
func Normalize(s string) (string, error) {
	if len(s) > 4*maxEmail {
		return "", ErrInvalid
	}
	e := strings.ToLower(strings.TrimSpace(norm.NFKC.String(s)))
	if len(e) > maxEmail || !emailRE.MatchString(e) || strings.Contains(e, "..") {
		return "", ErrInvalid
	}
	return e, nil
}
