package emailaddr

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.COM":        "alice@example.com",
		"  bob@example.com ":       "bob@example.com",
		"ａｌｉｃｅ@ｅｘａｍｐｌｅ.com":        "alice@example.com", // full width folds (NFKC)
		"x+tag@sub.example.co.uk":  "x+tag@sub.example.co.uk",
		"admin@xn--exmple-cua.com": "admin@xn--exmple-cua.com",
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "plain", "@example.com", "a@", "a@b", "a@@example.com", "a..b@example.com",
		"\u0430dmin@example.com",  // Cyrillic a
		"admin@ex\u0430mple.com",  // Cyrillic a in the domain
		"ad\u200dmin@example.com", // zero-width joiner
		"a b@example.com", "a@exa mple.com", "a@-example.com",
		"' OR 1=1 --@example.com",
		strings.Repeat("a", 250) + "@example.com",
	} {
		if got, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", bad, got)
		}
	}
}
