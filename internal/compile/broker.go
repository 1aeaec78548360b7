package compile

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/manifest"
)

// Output files of the broker's access list.
const (
	BrokerACLsFile  = brokeracl.LocalFile
	kafkaUsersFile  = KubernetesDeploy + "/kafka-users.yaml"
	kafkaTopicsFile = KubernetesDeploy + "/kafka-topics.yaml"
)

// PubSubName is the name of app's own pub/sub component: each app's sidecar connects to the
// broker with its own credentials, and Dapr cannot choose a secret per app inside one
// component (docs/event-bus-security.md).
func PubSubName(app string) string { return pubsubName + "-" + app }

func broadcastPubSubName(app string) string { return broadcastPubsubName + "-" + app }

// hasEvents reports whether m publishes or subscribes to anything.
func hasEvents(m *manifest.Module) bool {
	return len(m.Spec.Events.Publishes)+len(m.Spec.Events.Subscribes) > 0
}

// brokerACLs returns what m's app may do on the broker, recording the manifest line behind
// each rule: write what it publishes, read what it subscribes to, write its subscriptions'
// dead-letter topics (its sidecar sends dead letters), and use its own consumer groups.
func (g *gen) brokerACLs(m *manifest.Module) []brokeracl.ACL {
	id := m.Spec.App.ID
	var acls []brokeracl.ACL
	add := func(a brokeracl.ACL, why string, pos manifest.Position) {
		if slices.Contains(acls, a) {
			return
		}
		acls = append(acls, a)
		g.from(id+": "+a.String()+" ("+why+")", pos)
	}
	for i, p := range m.Spec.Events.Publishes {
		add(brokeracl.ACL{Resource: brokeracl.Topic, Name: p.Topic, Pattern: brokeracl.Literal, Operation: brokeracl.Write},
			"publishes", m.PosOf(fmt.Sprintf("/spec/events/publishes/%d", i)))
	}
	for i, s := range m.Spec.Events.Subscribes {
		pos := m.PosOf(fmt.Sprintf("/spec/events/subscribes/%d", i))
		add(brokeracl.ACL{Resource: brokeracl.Topic, Name: s.Topic, Pattern: brokeracl.Literal, Operation: brokeracl.Read}, "subscribes", pos)
		if s.Topic != s.DeadLetter() {
			add(brokeracl.ACL{Resource: brokeracl.Topic, Name: s.DeadLetter(), Pattern: brokeracl.Literal, Operation: brokeracl.Write}, "dead letters of a subscription", pos)
		}
		if s.Broadcast {
			// Broadcast groups are {appID}-{uuid}, one per sidecar.
			add(brokeracl.ACL{Resource: brokeracl.Group, Name: id + "-", Pattern: brokeracl.Prefixed, Operation: brokeracl.Read}, "broadcast consumer groups", pos)
		} else {
			add(brokeracl.ACL{Resource: brokeracl.Group, Name: id, Pattern: brokeracl.Literal, Operation: brokeracl.Read}, "consumer group", pos)
		}
	}
	return acls
}

// brokerTopics lists every topic the manifests name, dead-letter topics included, each with
// as many partitions as its most replicated subscriber has instances.
func (g *gen) brokerTopics() []brokeracl.TopicSpec {
	parts := map[string]int32{}
	need := func(topic string, n int) {
		parts[topic] = max(parts[topic], int32(n), 1)
	}
	for _, m := range g.set.Modules {
		for _, p := range m.Spec.Events.Publishes {
			need(p.Topic, 1)
		}
		for _, s := range m.Spec.Events.Subscribes {
			n := m.Spec.App.Instances()
			if s.Broadcast {
				n = 1 // every instance reads every partition
			}
			need(s.Topic, n)
			need(s.DeadLetter(), 1)
		}
	}
	var topics []brokeracl.TopicSpec
	for _, name := range sortedKeys(parts) {
		topics = append(topics, brokeracl.TopicSpec{Name: name, Partitions: parts[name]})
	}
	return topics
}

// brokerUsers emits the access list: locally the document `goplt run` applies to the local
// broker; in Kubernetes a Strimzi KafkaUser per app (its user operator creates the password
// Secret that the app's pub/sub component names).
func (g *gen) brokerUsers() {
	bu := g.prof.BrokerUsers
	if bu == nil {
		return
	}
	set := brokeracl.Set{APIVersion: brokeracl.APIVersion, Kind: brokeracl.Kind, Mechanism: "SCRAM-SHA-512", Topics: g.brokerTopics()}
	for _, m := range g.set.Modules {
		if !hasEvents(m) {
			continue
		}
		id := m.Spec.App.ID
		set.Users = append(set.Users, brokeracl.User{Name: id, Secret: bu.SecretName(id), Key: bu.Key, ACLs: g.brokerACLs(m)})
	}
	slices.SortFunc(set.Users, func(a, b brokeracl.User) int { return strings.Compare(a.Name, b.Name) })
	g.fromPlatform("users, passwords and mechanism", "/brokerUsers")
	if g.profile == "local" {
		g.emit(BrokerACLsFile, set)
		return
	}
	if bu.StrimziCluster == "" {
		g.pending = nil
		return
	}
	var docs []any
	for _, u := range set.Users {
		docs = append(docs, strimziUser(g.meta(u.Name), bu.StrimziCluster, u))
	}
	g.emit(kafkaUsersFile, docs...)
	// The apps' users may not create topics (no Create ACL), so Strimzi's topic operator does.
	g.fromPlatform("topics, partitions from the subscribers' replicas", "/brokerUsers")
	docs = nil
	for _, t := range set.Topics {
		docs = append(docs, strimziTopic(g.meta(t.Name), bu.StrimziCluster, t))
	}
	g.emit(kafkaTopicsFile, docs...)
}

// strimziTopic is a kafka.strimzi.io/v1 KafkaTopic; the replication factor is the cluster's
// default.replication.factor. A topic whose name is not a valid resource name (an underscore,
// say) gets a derived one and spec.topicName.
func strimziTopic(meta objectMeta, cluster string, t brokeracl.TopicSpec) kobj {
	meta.Labels = map[string]string{"strimzi.io/cluster": cluster}
	spec := struct {
		TopicName  string `yaml:"topicName,omitempty"`
		Partitions int32  `yaml:"partitions"`
	}{Partitions: t.Partitions}
	if !dnsSubdomain.MatchString(t.Name) || len(t.Name) > 253 {
		sum := sha256.Sum256([]byte(t.Name))
		name := strings.Trim(invalidNameChars.ReplaceAllString(strings.ToLower(t.Name), "-"), "-.")
		meta.Name = fmt.Sprintf("%.200s-%x", name, sum[:4])
		spec.TopicName = t.Name
	}
	return kobj{APIVersion: "kafka.strimzi.io/v1", Kind: "KafkaTopic", Metadata: meta, Spec: spec}
}

var (
	dnsSubdomain     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	invalidNameChars = regexp.MustCompile(`[^a-z0-9.-]+`)
)

type (
	strimziACL struct {
		Type     string `yaml:"type"`
		Resource struct {
			Type        string `yaml:"type"`
			Name        string `yaml:"name"`
			PatternType string `yaml:"patternType"`
		} `yaml:"resource"`
		Operations []string `yaml:"operations"`
	}
	strimziUserSpec struct {
		Authentication struct {
			Type string `yaml:"type"`
		} `yaml:"authentication"`
		Authorization struct {
			Type string       `yaml:"type"`
			ACLs []strimziACL `yaml:"acls"`
		} `yaml:"authorization"`
	}
)

// strimziUser is a kafka.strimzi.io/v1 KafkaUser: SCRAM-SHA-512, simple authorization.
func strimziUser(meta objectMeta, cluster string, u brokeracl.User) kobj {
	meta.Labels = map[string]string{"strimzi.io/cluster": cluster}
	var spec strimziUserSpec
	spec.Authentication.Type = "scram-sha-512"
	spec.Authorization.Type = "simple"
	for _, a := range u.ACLs {
		var s strimziACL
		s.Type = "allow"
		s.Resource.Type, s.Resource.Name, s.Resource.PatternType = a.Resource, a.Name, a.Pattern
		if a.Pattern == brokeracl.Prefixed {
			s.Resource.PatternType = "prefix" // Strimzi's word for it
		}
		s.Operations = []string{a.Operation}
		spec.Authorization.ACLs = append(spec.Authorization.ACLs, s)
	}
	return kobj{APIVersion: "kafka.strimzi.io/v1", Kind: "KafkaUser", Metadata: meta, Spec: spec}
}

// pubsubComponent is app's own pub/sub component: the profile's, with the metadata in
// override, plus the app's broker credentials when the profile gives every app its own user.
func (g *gen) pubsubComponent(name, app string, override map[string]any) resource {
	c := g.prof.PubSub
	c.Metadata = maps.Clone(c.Metadata)
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	maps.Copy(c.Metadata, override)
	var auth *componentAuth
	if bu := g.prof.BrokerUsers; bu != nil {
		c.Metadata["saslUsername"] = app
		c.Metadata["saslPassword"] = map[string]any{"secretKeyRef": map[string]any{"name": bu.SecretName(app), "key": bu.Key}}
		if g.profile == "local" {
			// Outside Kubernetes a component's secretKeyRef needs a named secret store.
			auth = &componentAuth{SecretStore: secretStoreName}
		}
	}
	r := component(g.meta(name), c, []string{app})
	r.Auth = auth
	return r
}

// brokerCredentialsSource records, for explain, the platform entry behind per-app credentials.
func (g *gen) brokerCredentialsSource() {
	if g.prof.BrokerUsers != nil {
		g.fromPlatform("saslUsername, saslPassword (the app's broker user)", "/brokerUsers")
	}
}
