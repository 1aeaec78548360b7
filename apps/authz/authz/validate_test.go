package authz

import (
	"strings"
	"testing"

	"github.com/ory/ladon"
)

func TestCheckValue(t *testing.T) {
	for _, ok := range []string{
		"blog.post.update", "user:<.+>", "blog:post:<[0-9]+>", "<.*>", "<blog|identity>.<[a-z]+>.read",
		"role:<[a-z.]{1,64}>", "m1:post:<(a|b)>", "x:<(ab)?>",
	} {
		if err := checkValue(ok); err != nil {
			t.Errorf("checkValue(%q) = %v, want ok", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"<(a+)+>":                "nested quantifiers",
		"<(a*)*b>":               "nested quantifiers",
		"<(.*a){10}>":            "nested quantifiers",
		"<(ab|a)*c>":             "alternation inside a quantifier",
		"<(a|aa)+>":              "alternation inside a quantifier",
		"<a{1000}>":              "repetition count",
		`<(a)\1>`:                "only RE2 syntax",
		"<(?=a)a>":               "only RE2 syntax",
		"<unbalanced":            "does not compile",
		"bad>":                   "unbalanced",
		"":                       "must be 1 to",
		strings.Repeat("a", 300): "must be 1 to",
	} {
		err := checkValue(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("checkValue(%q) = %v, want an error about %q", bad, err, why)
		}
	}
}

func TestValidatePolicy(t *testing.T) {
	p := &ladon.DefaultPolicy{ID: "owner-edits", Effect: "allow", Subjects: []string{"user:<.+>"}, Actions: []string{"blog.post.update"}, Resources: []string{"blog:post:<.+>"}}
	if err := validatePolicy(p); err != nil {
		t.Fatal(err)
	}
	bad := &ladon.DefaultPolicy{ID: "role:x", Effect: "maybe", Subjects: nil, Actions: []string{"<(a+)+>"}, Resources: []string{"x"}}
	err := validatePolicy(bad)
	for _, want := range []string{"belong to the compiled role policies", "effect \"maybe\"", "subjects: want 1 to", "nested quantifiers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validatePolicy(bad) = %v, want it to mention %q", err, want)
		}
	}
}
