package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// EventSchema is one version of an event's payload schema (JSON Schema, as JSON).
type EventSchema struct {
	Version int
	Schema  string
}

// Set is a module's event contracts as its manifest declares them (goplt generate writes
// them to <app>/contract/contract_gen.go): the schema of each event it publishes, and the
// payload versions each subscription reads.
type Set struct {
	Publishes  map[string]EventSchema
	Subscribes map[string][]EventSchema
}

// ErrContract marks a payload that breaks its event contract.
var ErrContract = errors.New("event contract")

// Checker checks payloads against a Set, every schema compiled once (formats asserted).
type Checker struct {
	publishes  map[string]compiled
	subscribes map[string][]compiled
}

type compiled struct {
	version int
	schema  *jsonschema.Schema
}

// Checker compiles the set.
func (s Set) Checker() (*Checker, error) {
	c := &Checker{publishes: map[string]compiled{}, subscribes: map[string][]compiled{}}
	for topic, es := range s.Publishes {
		sch, err := compileSchema(topic, es)
		if err != nil {
			return nil, err
		}
		c.publishes[topic] = compiled{es.Version, sch}
	}
	for topic, list := range s.Subscribes {
		for _, es := range list {
			sch, err := compileSchema(topic, es)
			if err != nil {
				return nil, err
			}
			c.subscribes[topic] = append(c.subscribes[topic], compiled{es.Version, sch})
		}
	}
	return c, nil
}

func compileSchema(topic string, es EventSchema) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(es.Schema))
	if err != nil {
		return nil, fmt.Errorf("schema of %s version %d: %w", topic, es.Version, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	url := "https://goplt.dev/events/" + topic + ".v" + strconv.Itoa(es.Version) + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema of %s version %d: %w", topic, es.Version, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema of %s version %d: %w", topic, es.Version, err)
	}
	return sch, nil
}

// Outgoing checks a payload (JSON) about to be published on topic: the topic must be one the
// module publishes, and the payload must match its schema.
func (c *Checker) Outgoing(topic string, payload []byte) error {
	cs, ok := c.publishes[topic]
	if !ok {
		return fmt.Errorf("%w: %s is not a topic the manifest publishes", ErrContract, topic)
	}
	if err := validate(cs.schema, payload); err != nil {
		return fmt.Errorf("%w: the payload for %s does not match its schema (version %d): %v", ErrContract, topic, cs.version, err)
	}
	return nil
}

// Incoming checks a delivered payload against the schema of the version it names (its
// "version" property; none means 1), if the subscription to topic reads that version. A topic
// without a contract (published outside goplt) passes.
func (c *Checker) Incoming(topic string, payload []byte) error {
	if _, ok := c.subscribes[topic]; !ok {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%w: payload of %s is not JSON: %v", ErrContract, topic, err)
	}
	return c.IncomingValue(topic, inst)
}

// IncomingValue is Incoming for a payload already decoded with numbers as json.Number (as
// eventsig.Decode does): a subscriber that verifies the signature parses the payload once.
func (c *Checker) IncomingValue(topic string, payload any) error {
	accepted, ok := c.subscribes[topic]
	if !ok {
		return nil
	}
	v := 1
	if m, ok := payload.(map[string]any); ok {
		if n, ok := m["version"].(json.Number); ok {
			if i, err := strconv.Atoi(string(n)); err == nil {
				v = i
			}
		}
	}
	i := slices.IndexFunc(accepted, func(a compiled) bool { return a.version == v })
	if i < 0 {
		var vs []string
		for _, a := range accepted {
			vs = append(vs, strconv.Itoa(a.version))
		}
		return fmt.Errorf("%w: payload version %d of %s is not one this subscription reads (%s)", ErrContract, v, topic, strings.Join(vs, ", "))
	}
	if err := accepted[i].schema.Validate(payload); err != nil {
		return fmt.Errorf("%w: payload does not match %s version %d: %v", ErrContract, topic, v, err)
	}
	return nil
}

func validate(s *jsonschema.Schema, payload []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(inst)
}
