package authz

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/goplt/goplt/internal/policydoc"
	"github.com/ory/ladon"
	"github.com/ory/ladon/compiler"
)

// Limits on runtime policies.
const (
	maxEntries     = 64  // per subjects, actions, resources
	maxValueLen    = 256 // per entry
	maxRepeatCount = 100 // {n,m} bounds
)

var policyIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,127}$`)

// validatePolicy checks a runtime policy before it is stored. ladon evaluates patterns with a
// backtracking engine (regexp2), so a pattern that could backtrack badly is refused here,
// where the author can fix it, rather than timing out decisions later.
func validatePolicy(p *ladon.DefaultPolicy) error {
	var errs []string
	if !policyIDRE.MatchString(p.ID) {
		errs = append(errs, fmt.Sprintf("id %q must match %s", p.ID, policyIDRE))
	}
	if _, ok := policydoc.RoleOf(p.ID); ok {
		errs = append(errs, fmt.Sprintf("id %q: ids starting with %s belong to the compiled role policies", p.ID, policydoc.RolePrefix))
	}
	if p.Effect != ladon.AllowAccess && p.Effect != ladon.DenyAccess {
		errs = append(errs, fmt.Sprintf("effect %q must be allow or deny", p.Effect))
	}
	for _, f := range []struct {
		name string
		vals []string
	}{{"subjects", p.Subjects}, {"actions", p.Actions}, {"resources", p.Resources}} {
		if len(f.vals) == 0 || len(f.vals) > maxEntries {
			errs = append(errs, fmt.Sprintf("%s: want 1 to %d entries", f.name, maxEntries))
		}
		for i, v := range f.vals {
			if err := checkValue(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s[%d] %q: %v", f.name, i, v, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// checkValue checks one subject, action or resource: a literal, or a template with <regex>
// parts.
func checkValue(v string) error {
	if v == "" || len(v) > maxValueLen {
		return fmt.Errorf("must be 1 to %d bytes", maxValueLen)
	}
	if !strings.ContainsRune(v, '<') {
		if strings.ContainsRune(v, '>') {
			return errors.New("unbalanced > (patterns are written <regex>)")
		}
		return nil
	}
	if _, err := compiler.CompileRegex(v, '<', '>'); err != nil {
		return fmt.Errorf("pattern does not compile: %v", err)
	}
	for _, inner := range patternParts(v) {
		re, err := syntax.Parse(inner, syntax.Perl)
		if err != nil {
			return fmt.Errorf("pattern <%s>: only RE2 syntax is allowed (no backreferences or lookaround): %v", inner, err)
		}
		if err := checkBacktracking(re, false); err != nil {
			return fmt.Errorf("pattern <%s>: %v", inner, err)
		}
	}
	return nil
}

// patternParts returns the regexes between top-level < and >.
func patternParts(v string) []string {
	var out []string
	level, start := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '<':
			if level++; level == 1 {
				start = i + 1
			}
		case '>':
			if level--; level == 0 {
				out = append(out, v[start:i])
			}
		}
	}
	return out
}

// checkBacktracking refuses the shapes that make a backtracking matcher exponential: a
// quantifier inside a quantifier ((a+)+, (a*b?)*) and an alternation of more than single
// characters inside a quantifier ((ab|a)*); and huge counted repetitions.
func checkBacktracking(re *syntax.Regexp, underQuantifier bool) error {
	switch re.Op {
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		if re.Op == syntax.OpRepeat && (re.Max > maxRepeatCount || re.Min > maxRepeatCount) {
			return fmt.Errorf("repetition count above %d", maxRepeatCount)
		}
		if underQuantifier && re.Op != syntax.OpQuest {
			return errors.New("nested quantifiers can backtrack exponentially; flatten the pattern")
		}
		under := re.Op != syntax.OpQuest && !(re.Op == syntax.OpRepeat && re.Max == 1)
		for _, s := range re.Sub {
			if err := checkBacktracking(s, underQuantifier || under); err != nil {
				return err
			}
		}
		return nil
	case syntax.OpAlternate:
		if underQuantifier {
			return errors.New("alternation inside a quantifier can backtrack exponentially; use a character class or anchor the alternatives")
		}
	}
	for _, s := range re.Sub {
		if err := checkBacktracking(s, underQuantifier); err != nil {
			return err
		}
	}
	return nil
}
