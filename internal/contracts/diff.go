// Package contracts compares versions of event payload schemas (JSON Schema documents, the
// subset goplt's events use: type, format, const, enum, properties, required, items) the way
// protobuf's breaking-change checks compare messages. An event stream keeps old events next to
// new ones, so a change breaks when either side cannot read the other's events: a field
// removed or newly required, a type changed, an enum narrowed.
package contracts

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Rules a change can break.
const (
	RuleFieldRemoved  = "field-removed"  // a property old events have is gone
	RuleNewlyRequired = "newly-required" // a property old events may lack is now required
	RuleTypeChanged   = "type-changed"   // type, format or const differs
	RuleEnumNarrowed  = "enum-narrowed"  // a value old events may carry is no longer allowed
	RuleVersionReused = "version-reused" // the same version number with a different schema
	RuleTopicRemoved  = "topic-removed"  // a published topic is gone
)

// Change is one breaking difference.
type Change struct {
	Rule   string
	Path   string // JSON pointer into the payload ("" for the whole payload)
	Detail string
}

func (c Change) String() string {
	p := c.Path
	if p == "" {
		p = "/"
	}
	return fmt.Sprintf("%s at %s: %s", c.Rule, p, c.Detail)
}

// Parse decodes a schema document.
func Parse(b []byte) (map[string]any, error) {
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return s, nil
}

// Breaking returns the changes from old to new that break readers of either, sorted by path.
// Properties listed in ignore (top-level names, such as "version") are not compared.
func Breaking(old, new map[string]any, ignore ...string) []Change {
	var out []Change
	diff(&out, "", old, new, ignore)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Same reports whether two schemas are the same contract (ignoring annotations).
func Same(a, b map[string]any) bool {
	return reflect.DeepEqual(strip(a), strip(b))
}

// annotations do not change what a schema accepts.
var annotations = []string{"$schema", "$id", "title", "description", "$comment", "examples"}

func strip(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if !slices.Contains(annotations, k) {
				out[k] = strip(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = strip(val)
		}
		return out
	}
	return v
}

func diff(out *[]Change, path string, old, new map[string]any, ignore []string) {
	add := func(rule, p, format string, args ...any) {
		*out = append(*out, Change{Rule: rule, Path: p, Detail: fmt.Sprintf(format, args...)})
	}
	if o, n := types(old), types(new); !slices.Equal(o, n) && len(o) > 0 {
		add(RuleTypeChanged, path, "type %s became %s", strings.Join(o, "|"), orAny(n))
		return // what lies below is not comparable
	}
	for _, k := range []string{"format", "const"} {
		if ov, ok := old[k]; ok && !reflect.DeepEqual(ov, new[k]) {
			add(RuleTypeChanged, path, "%s %v became %v", k, js(ov), js(new[k]))
		}
	}
	if oe, ok := old["enum"].([]any); ok {
		ne, constrained := new["enum"].([]any)
		if constrained {
			for _, v := range oe {
				if !slices.ContainsFunc(ne, func(x any) bool { return reflect.DeepEqual(x, v) }) {
					add(RuleEnumNarrowed, path, "value %s is no longer allowed", js(v))
				}
			}
		}
	} else if ne, ok := new["enum"].([]any); ok {
		add(RuleEnumNarrowed, path, "now limited to %s", js(ne))
	}

	oldProps, _ := old["properties"].(map[string]any)
	newProps, _ := new["properties"].(map[string]any)
	oldReq, newReq := strs(old["required"]), strs(new["required"])
	skip := func(name string) bool { return path == "" && slices.Contains(ignore, name) }
	for _, name := range sortedKeys(oldProps) {
		if skip(name) {
			continue
		}
		p := path + "/" + name
		np, ok := newProps[name].(map[string]any)
		if !ok {
			add(RuleFieldRemoved, p, "property %s was removed", name)
			continue
		}
		if op, ok := oldProps[name].(map[string]any); ok {
			diff(out, p, op, np, nil)
		}
	}
	for _, name := range newReq {
		if skip(name) || slices.Contains(oldReq, name) {
			continue
		}
		add(RuleNewlyRequired, path+"/"+name, "property %s is now required", name)
	}
	if oi, ok := old["items"].(map[string]any); ok {
		if ni, ok := new["items"].(map[string]any); ok {
			diff(out, path+"/*", oi, ni, nil)
		}
	}
}

func types(s map[string]any) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, v := range t {
			if str, ok := v.(string); ok {
				out = append(out, str)
			}
		}
		sort.Strings(out)
		return out
	}
	return nil
}

func orAny(t []string) string {
	if len(t) == 0 {
		return "any"
	}
	return strings.Join(t, "|")
}

func strs(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Event is a published event's contract.
type Event struct {
	Topic   string
	Version int
	Schema  map[string]any
}

// TopicChange is a breaking change to one topic's contract.
type TopicChange struct {
	Topic string
	Change
}

// Compare returns the breaking changes from the old set of published events to the new one:
// a topic gone, a version reused with a different schema, or a schema changed in a way that
// breaks readers (the payload's own "version" property aside).
func Compare(old, new map[string]Event) []TopicChange {
	var out []TopicChange
	for _, t := range slices.Sorted(maps.Keys(old)) {
		o := old[t]
		n, ok := new[t]
		if !ok {
			out = append(out, TopicChange{t, Change{Rule: RuleTopicRemoved, Detail: fmt.Sprintf("no module publishes %s any more", t)}})
			continue
		}
		if o.Version == n.Version {
			if !Same(o.Schema, n.Schema) {
				detail := fmt.Sprintf("version %d now has a different schema; publish it as version %d", n.Version, n.Version+1)
				out = append(out, TopicChange{t, Change{Rule: RuleVersionReused, Detail: detail}})
			}
			continue
		}
		for _, c := range Breaking(o.Schema, n.Schema, "version") {
			c.Detail += fmt.Sprintf(" (version %d to %d)", o.Version, n.Version)
			out = append(out, TopicChange{t, c})
		}
	}
	return out
}
