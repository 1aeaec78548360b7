package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/kafkabroker"
	"github.com/goplt/goplt/internal/localsecrets"
)

// appClient is a broker client logged in as app's own user (its sidecar's credentials).
func appClient(t *testing.T, app string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	set, err := brokeracl.Load(stack.Root + "/" + brokeracl.LocalFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := localsecrets.Read(stack.Endpoints().SecretsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range set.Users {
		if u.Name == app {
			creds := kafkabroker.Credentials{User: app, Password: f[u.Secret][u.Key]}
			cl, err := kgo.NewClient(append(append(creds.ClientOpts(), kgo.SeedBrokers(stack.Endpoints().KafkaBrokers...),
				kgo.RequestRetries(1), kgo.RetryTimeout(5*time.Second)), opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			return cl
		}
	}
	t.Fatalf("%s has no broker user in %s", app, brokeracl.LocalFile)
	return nil
}

func produce(cl *kgo.Client, topic string, v []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: v}).FirstErr()
}

// The broker refuses anonymous clients and holds each app to its manifest: blog may read
// identity.user.deleted (it subscribes) in its own group, and nothing else.
func TestBrokerEnforcesTheManifests(t *testing.T) {
	needStack(t)
	anon, err := kgo.NewClient(kgo.SeedBrokers(stack.Endpoints().KafkaBrokers...), kgo.RequestRetries(1), kgo.RetryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if err := produce(anon, "identity.user.deleted", []byte(`{}`)); err == nil {
		t.Error("an anonymous client wrote to identity.user.deleted")
	}
	wrong := kafkabroker.Credentials{User: "blog", Password: "not its password"}
	cl, _ := kgo.NewClient(append(wrong.ClientOpts(), kgo.SeedBrokers(stack.Endpoints().KafkaBrokers...), kgo.RequestRetries(1))...)
	defer cl.Close()
	if err := produce(cl, "blog.post.published", []byte(`{}`)); err == nil {
		t.Error("blog's user with a wrong password wrote to its own topic")
	}

	blog := appClient(t, "blog")
	if err := produce(blog, "identity.user.deleted", []byte(`{}`)); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("blog writes identity's topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := produce(blog, "blog.post.published", signedBy(t, "blog", "blog.post.published", map[string]any{"version": 1})); err != nil {
		t.Errorf("blog writes its own topic: %v", err)
	}

	// Reading: a topic it does not subscribe to, and another app's consumer group.
	read := func(topic, group string) error {
		c := appClient(t, "blog", kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			f := c.PollFetches(ctx)
			if err := f.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			if f.NumRecords() > 0 {
				return nil
			}
		}
		return ctx.Err()
	}
	if err := read("auth.login.failed", "blog"); !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("blog reads auth.login.failed: %v, want an authorization failure", err)
	}
	if err := read("identity.user.deleted", "audit"); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("blog joins audit's consumer group: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
}

func signedBy(t *testing.T, app, topic string, data any) []byte {
	t.Helper()
	b, err := stack.SignedEvent(app, topic, fmt.Sprintf("%s-%d", app, time.Now().UnixNano()), data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An event forged into identity.user.deleted (by whoever holds identity's broker password,
// here the superuser) with identity as its source but no valid signature changes nothing:
// blog keeps the user's post, audit does not record it as genuine, and both dead-letter it.
func TestForgedEventsAreDeadLettered(t *testing.T) {
	needStack(t)
	author := register(t)
	r := do(t, "POST", "/blog/posts", author.tok.AccessToken, map[string]string{"title": "still mine", "body": "x"})
	expect(t, r, http.StatusCreated, "create")
	var p struct{ ID string }
	r.decode(t, &p)
	expect(t, do(t, "POST", "/blog/posts/"+p.ID+"/publish", author.tok.AccessToken, nil), http.StatusOK, "publish")

	data := map[string]any{"version": 2, "userId": author.ID, "roles": []string{}, "principalVersion": 2, "at": time.Now().UTC()}
	forge := func(name string, signed []byte, f func(m map[string]any)) [2]string {
		var m map[string]any
		if err := json.Unmarshal(signed, &m); err != nil {
			t.Fatal(err)
		}
		m["id"] = fmt.Sprintf("forged-%s-%d", name, time.Now().UnixNano())
		f(m)
		b, _ := json.Marshal(m)
		return [2]string{m["id"].(string), string(b)}
	}
	genuine := signedBy(t, "identity", "identity.user.deleted", data)
	forged := [][2]string{
		forge("unsigned", genuine, func(m map[string]any) { delete(m, eventsig.SignatureAttr); delete(m, eventsig.KeyIDAttr) }),
		// A genuine signature over another id.
		forge("tampered", genuine, func(map[string]any) {}),
		// Signed, but by blog's key, in identity's name.
		forge("wrong-source", signedBy(t, "blog", "identity.user.deleted", data), func(m map[string]any) { m["source"] = "identity" }),
	}
	su, err := stack.KafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close()
	for _, f := range forged {
		if err := produce(su, "identity.user.deleted", []byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}

	// Both subscribers dead-letter every forged event ...
	// (Read raw: other tests leave records there that are not CloudEvents at all.)
	want := map[string]bool{}
	for _, f := range forged {
		for _, topic := range []string{"identity.user.deleted.deadletter", "audit.deadletter"} {
			want[topic+" "+f[0]] = true
		}
	}
	dead, err := stack.KafkaClient(kgo.ConsumeTopics("identity.user.deleted.deadletter", "audit.deadletter"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(want) > 0 && ctx.Err() == nil {
		dead.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var e struct{ ID string }
			if json.Unmarshal(r.Value, &e) == nil {
				delete(want, r.Topic+" "+e.ID)
			}
		})
	}
	for w := range want {
		t.Errorf("not dead-lettered: %s", w)
	}
	// ... and applies none: the post keeps its author, audit's log has no such event, the
	// dead letters list each, and the chain verifies.
	r = do(t, "GET", "/blog/posts/"+p.ID, "", nil)
	expect(t, r, http.StatusOK, "read the post")
	if !strings.Contains(string(r.body), author.ID) {
		t.Errorf("a forged deletion anonymised the post: %s", r.body)
	}
	conn, err := pgx.Connect(context.Background(), stack.Endpoints().PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ids []string
	for _, f := range forged {
		ids = append(ids, f[0])
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit.log WHERE event_id = ANY($1)`, ids).Scan(&n); err != nil || n != 0 {
		t.Errorf("audit recorded %d forged events as genuine (%v)", n, err)
	}
	a := admin(t)
	deadline := time.Now().Add(30 * time.Second)
	for _, f := range forged {
		for {
			r := do(t, "GET", "/audit/dead-letters", a.tok.AccessToken, nil)
			if strings.Contains(string(r.body), f[0]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not in audit's dead letters: %.300s", f[0], r.body)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	r = do(t, "GET", "/audit/verify", a.tok.AccessToken, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"ok":true`) {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
}
