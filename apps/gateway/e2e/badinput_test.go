package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/goplt/goplt/internal/stacktest"
)

// Every subscription of the platform, fed events it can never process (data that is not the
// JSON object every handler expects, and bytes that are no CloudEvent at all): each lands on
// the subscription's dead-letter topic, and no app or sidecar crashes or restarts.
func TestBadEventsOnEverySubscriptionAreDeadLettered(t *testing.T) {
	needStack(t)
	files, err := filepath.Glob(filepath.Join(stack.Root, "components", "local", "subscription-*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated subscriptions: %v", err)
	}
	type sub struct{ app, topic, dlq string }
	var subs []sub
	dlqs := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Spec struct {
				Topic           string `yaml:"topic"`
				DeadLetterTopic string `yaml:"deadLetterTopic"`
			} `yaml:"spec"`
			Scopes []string `yaml:"scopes"`
		}
		if err := yaml.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(s.Spec.Topic, "deadletter") {
			continue // audit's own dead-letter subscription keeps whatever arrives
		}
		subs = append(subs, sub{s.Scopes[0], s.Spec.Topic, s.Spec.DeadLetterTopic})
		dlqs[s.Spec.DeadLetterTopic] = true
	}
	var dlqTopics []string
	for d := range dlqs {
		dlqTopics = append(dlqTopics, d)
	}
	// What reaches the dead-letter topics, by CloudEvent id (the raw non-CloudEvent records
	// arrive there too, as they are, and are skipped here).
	dead, err := stack.KafkaClient(kgo.ConsumeTopics(dlqTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation(), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	pids := map[string]int{}
	for _, id := range allApps {
		a := group.App(id)
		pids[id+" sidecar"] = a.Sidecar().Pid()
		if p := a.Process(); p != nil {
			pids[id] = p.Pid()
		}
	}

	cl, err := stack.KafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	run := time.Now().UnixNano()
	want := map[string]map[string]bool{} // event id -> the dead-letter topic of every subscriber
	byTopic := map[string]string{}
	for _, s := range subs {
		id, ok := byTopic[s.topic]
		if !ok {
			id = fmt.Sprintf("bad-%d-%s", run, s.topic)
			byTopic[s.topic] = id
			want[id] = map[string]bool{}
			// Genuinely signed by the topic's publisher (topics are named <app>.<...>), so the
			// handlers' own checks are what reject it.
			ce, err := stack.SignedEvent(strings.SplitN(s.topic, ".", 2)[0], s.topic, id, "not an object")
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range [][]byte{ce, []byte("\x00\x01 not a cloudevent {")} {
				if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: s.topic, Value: v}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
		want[id][s.dlq] = true
	}
	got := map[string]map[string]bool{}
	missing := func() int {
		n := 0
		for id, dlqs := range want {
			for d := range dlqs {
				if !got[id][d] {
					n++
				}
			}
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for missing() > 0 && ctx.Err() == nil {
		dead.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var e struct{ ID string }
			if json.Unmarshal(r.Value, &e) == nil && want[e.ID] != nil {
				if got[e.ID] == nil {
					got[e.ID] = map[string]bool{}
				}
				got[e.ID][r.Topic] = true
			}
		})
	}
	for id, dlqs := range want {
		for d := range dlqs {
			if !got[id][d] {
				t.Errorf("%s not dead-lettered on %s", id, d)
			}
		}
	}
	if len(subs) < 15 {
		t.Errorf("only %d subscriptions found; the test covers too little", len(subs))
	}
	t.Logf("%d subscriptions on %d topics: every bad event reached every subscriber's dead-letter topic", len(subs), len(want))
	for _, id := range allApps {
		a := group.App(id)
		if a.Sidecar().Exited() || a.Sidecar().Pid() != pids[id+" sidecar"] {
			t.Errorf("%s's sidecar died or was restarted", id)
		}
		if p := a.Process(); p != nil && (p.Exited() || p.Pid() != pids[id]) {
			t.Errorf("%s died or was restarted", id)
		}
	}
	// Audit keeps what it dead-letters; the chain still verifies.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, body := stacktest.Invoke(t, group.App("console"), "audit", "GET", "/audit/dead-letters?limit=500", "", nil)
		if status == 200 && strings.Contains(string(body), fmt.Sprintf("bad-%d-auth.login.failed", run)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit's dead letters lack this run's events: %d %.300s", status, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
