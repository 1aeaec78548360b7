// Package brokeracl is the event bus's access list as goplt generates it from the manifests
// (deploy/local/broker-acls.yaml): one SASL user per app with events, the Kafka ACLs that let
// it do exactly what its manifest declares, and the topics to create. `goplt run` applies it
// to the local broker; the kubernetes profile emits the same rules as Strimzi KafkaUsers.
package brokeracl

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// APIVersion and Kind of the generated document.
const (
	APIVersion = "goplt/v1"
	Kind       = "BrokerACLs"
)

// LocalFile is where generate writes the local profile's access list.
const LocalFile = "deploy/local/broker-acls.yaml"

// Resource types, patterns and operations, named as Kafka names them.
const (
	Topic    = "topic"
	Group    = "group"
	Literal  = "literal"
	Prefixed = "prefixed"
	Read     = "Read"
	Write    = "Write"
)

// Set is the whole access list.
type Set struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Mechanism is the SASL mechanism every user authenticates with.
	Mechanism string `yaml:"mechanism"`
	// Topics are created (as the broker's administrator) before any app starts, so apps need
	// no right to create topics.
	Topics []TopicSpec `yaml:"topics"`
	Users  []User      `yaml:"users"`
}

// TopicSpec is a topic with the partitions it needs: at least one per instance of its most
// replicated subscriber, so the consumer group can spread over all of them.
type TopicSpec struct {
	Name       string `yaml:"name"`
	Partitions int32  `yaml:"partitions"`
}

// User is one app's broker identity.
type User struct {
	Name string `yaml:"name"` // the SASL user name: the app id
	// Secret and Key locate the user's password in the secret store.
	Secret string `yaml:"secret"`
	Key    string `yaml:"key"`
	ACLs   []ACL  `yaml:"acls"`
}

// ACL allows one operation on one resource (or every resource whose name has the prefix).
type ACL struct {
	Resource  string `yaml:"resource"`
	Name      string `yaml:"name"`
	Pattern   string `yaml:"pattern"`
	Operation string `yaml:"operation"`
}

func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s (%s)", a.Operation, a.Resource, a.Name, a.Pattern)
}

// Load reads a generated access list.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Set
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.APIVersion != APIVersion || s.Kind != Kind {
		return nil, fmt.Errorf("%s: not a %s %s document", path, APIVersion, Kind)
	}
	return &s, nil
}
