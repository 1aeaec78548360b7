package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/ports"
)

// startBroker runs the local broker (SASL and ACLs on) on a free port until the test ends.
func startBroker(t *testing.T, admin Credentials) []string {
	t.Helper()
	alloc, err := ports.Default()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alloc.Close)
	ps, err := alloc.Take(1)
	if err != nil {
		t.Fatal(err)
	}
	alloc.Release(ps...) // the broker binds it now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, t.TempDir(), ps, admin, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); <-done })
	brokers := []string{fmt.Sprintf("127.0.0.1:%d", ps[0])}
	cl, err := kgo.NewClient(append(admin.ClientOpts(), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for cl.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("broker not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return brokers
}

func client(t *testing.T, brokers []string, c Credentials, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(append(c.ClientOpts(), kgo.SeedBrokers(brokers...), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second)), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(cl *kgo.Client, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
}

// Apply makes users and ACLs exactly what the list says, on a running broker, and again after
// the list changed (a stale ACL is removed).
func TestApplyEnforcesTheList(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a broker")
	}
	admin := Credentials{User: "goplt-admin", Password: "admin-secret"}
	brokers := startBroker(t, admin)
	set := &brokeracl.Set{Topics: []brokeracl.TopicSpec{{Name: "a.made", Partitions: 2}, {Name: "b.made", Partitions: 1}, {Name: "a.made.deadletter", Partitions: 1}}, Users: []brokeracl.User{
		{Name: "a", ACLs: []brokeracl.ACL{{Resource: brokeracl.Topic, Name: "a.made", Pattern: brokeracl.Literal, Operation: brokeracl.Write}}},
		{Name: "b", ACLs: []brokeracl.ACL{
			{Resource: brokeracl.Topic, Name: "a.made", Pattern: brokeracl.Literal, Operation: brokeracl.Read},
			{Resource: brokeracl.Topic, Name: "b.made", Pattern: brokeracl.Literal, Operation: brokeracl.Write},
			{Resource: brokeracl.Group, Name: "b", Pattern: brokeracl.Literal, Operation: brokeracl.Read},
		}},
	}}
	pw := map[string]string{"a": "pa", "b": "pb"}
	ctx := context.Background()
	if err := Apply(ctx, brokers, admin, set, pw); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, brokers, admin, set, pw); err != nil {
		t.Fatalf("second apply (idempotent): %v", err)
	}
	a := client(t, brokers, Credentials{"a", "pa"})
	b := client(t, brokers, Credentials{"b", "pb"})
	if err := produce(client(t, brokers, Credentials{}), "a.made"); err == nil {
		t.Error("anonymous write accepted")
	}
	if err := produce(client(t, brokers, Credentials{"a", "pb"}), "a.made"); err == nil {
		t.Error("wrong password accepted")
	}
	if err := produce(a, "a.made"); err != nil {
		t.Errorf("a writes its topic: %v", err)
	}
	if err := produce(a, "b.made"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("a writes b's topic: %v", err)
	}
	if err := produce(b, "a.made"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("b writes a topic it reads: %v", err)
	}
	if err := produce(b, "b.made"); err != nil {
		t.Errorf("b writes its topic: %v", err)
	}
	// Topics were made with the partitions asked for; users cannot create others.
	md, err := kadm.NewClient(client(t, brokers, admin)).ListTopics(ctx, "a.made")
	if err != nil || len(md["a.made"].Partitions) != 2 {
		t.Errorf("a.made: %v partitions (%v), want 2", len(md["a.made"].Partitions), err)
	}
	if err := produce(a, "a.new"); err == nil {
		t.Error("a created and wrote a topic not on the list")
	}

	// b no longer publishes b.made: its Write ACL goes. b.made needs 3 partitions now.
	set.Users[1].ACLs = set.Users[1].ACLs[:1]
	set.Topics[1].Partitions = 3
	if err := Apply(ctx, brokers, admin, set, pw); err != nil {
		t.Fatal(err)
	}
	if err := produce(client(t, brokers, Credentials{"b", "pb"}), "b.made"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("b writes after its ACL was removed: %v", err)
	}
	md, err = kadm.NewClient(client(t, brokers, admin)).ListTopics(ctx, "b.made")
	if err != nil || len(md["b.made"].Partitions) != 3 {
		t.Errorf("b.made: %v partitions (%v), want 3", len(md["b.made"].Partitions), err)
	}
}
