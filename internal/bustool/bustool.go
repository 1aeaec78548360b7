// Package bustool reads and writes the local event bus from outside any app, as a developer
// does from a shell (goplt events tail, goplt events publish) and tests do: it tails a topic,
// verifying each event's signature like every subscriber, and publishes an event signed with
// an app's key, through the broker as that app's user, so subscribers accept it. (The Dapr
// CLI's `dapr publish` sends unsigned events, which subscribers dead-letter.)
package bustool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/eventsig"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/kafkabroker"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/token"
)

// Bus is the local event bus: its brokers and the secrets file that holds the broker
// credentials and the event-signing keys.
type Bus struct {
	Brokers     []string
	SecretsFile string
	// ACLs is the generated access list (brokeracl.LocalFile); nil when apps connect
	// anonymously.
	ACLs *brokeracl.Set
}

// Event is one record of a topic, decoded as the CloudEvent goplt publishes.
type Event struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       string
	ID        string
	Source    string
	Type      string
	Time      string
	Data      json.RawMessage
	// Verified is nil when the signature verifies against the source's published keys;
	// else why not (eventsig.ErrUnsigned, ErrUnknownKey, ErrBadSignature, or not a CloudEvent).
	Verified error
	// Raw is the record's value as the broker holds it.
	Raw []byte
}

// TailOptions select what Tail reads.
type TailOptions struct {
	// FromStart reads the topic from its first record; else only records produced after
	// Tail starts.
	FromStart bool
	// Limit stops after that many events (0: until ctx ends).
	Limit int
}

// Tail reads topic as the broker's administrator and calls fn with each event, in order per
// partition, until ctx ends, Limit is reached, or fn returns an error. It joins no consumer
// group, so it takes nothing from the apps' subscriptions.
func (b Bus) Tail(ctx context.Context, topic string, opts TailOptions, fn func(Event) error) error {
	admin, err := b.admin()
	if err != nil {
		return err
	}
	offset := kgo.NewOffset().AtEnd()
	if opts.FromStart {
		offset = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append(admin.ClientOpts(), kgo.SeedBrokers(b.Brokers...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(offset))...)
	if err != nil {
		return fmt.Errorf("broker client: %w", err)
	}
	defer cl.Close()
	keys := eventsig.NewKeyCache(b.publicKeys, 5*time.Second, time.Second)
	seen := 0
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("read %s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		var stop error
		fetches.EachRecord(func(r *kgo.Record) {
			if stop != nil {
				return
			}
			e := decode(ctx, keys, r)
			if err := fn(e); err != nil {
				stop = err
				return
			}
			seen++
			if opts.Limit > 0 && seen >= opts.Limit {
				stop = errLimit
			}
		})
		if errors.Is(stop, errLimit) {
			return nil
		}
		if stop != nil {
			return stop
		}
	}
}

var errLimit = errors.New("limit reached")

// decode reads a record as a signed CloudEvent and verifies it.
func decode(ctx context.Context, keys eventsig.PublicKeys, r *kgo.Record) Event {
	e := Event{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: string(r.Key), Raw: r.Value}
	var ce eventsig.CloudEvent
	if err := json.Unmarshal(r.Value, &ce); err != nil {
		e.Verified = fmt.Errorf("not a CloudEvent: %w", err)
		return e
	}
	e.ID, e.Source, e.Type, e.Time, e.Data = ce.ID, ce.Source, ce.Type, ce.Time, ce.Data
	e.Verified = eventsig.Verify(ctx, keys, eventsig.Envelope{ID: ce.ID, Source: ce.Source, Type: ce.Type, Topic: r.Topic, Time: ce.Time, Data: ce.Data},
		ce.KeyID, ce.Signature)
	return e
}

// Published is where an event landed.
type Published struct {
	ID, Topic string
	Partition int32
	Offset    int64
	// CloudEvent is the record's value.
	CloudEvent []byte
}

// Publish sends data (a JSON payload) on topic as a CloudEvent with the given id, signed with
// app's event-signing key and produced as app's broker user: the broker's ACLs and every
// subscriber's checks treat it as app's own.
func (b Bus) Publish(ctx context.Context, app, topic, id string, data []byte) (Published, error) {
	f, err := localsecrets.Read(b.SecretsFile)
	if err != nil {
		return Published{}, err
	}
	raw := f[eventsig.SigningSecret(app)][eventsig.KeySetField]
	if raw == "" {
		return Published{}, fmt.Errorf("%s has no event-signing key for %s (%s): is %s an app of this platform? goplt run or goplt env creates it",
			b.SecretsFile, app, eventsig.SigningSecret(app), app)
	}
	ks, err := token.ParseKeySet([]byte(raw))
	if err != nil {
		return Published{}, fmt.Errorf("%s: %w", eventsig.SigningSecret(app), err)
	}
	key, err := ks.Signing()
	if err != nil {
		return Published{}, err
	}
	ce, err := eventsig.NewStaticSigner(app, key).Event(ctx, topic, id, data)
	if err != nil {
		return Published{}, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(b.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks())}
	if b.ACLs != nil && len(b.ACLs.Users) > 0 {
		creds, err := b.user(f, app)
		if err != nil {
			return Published{}, err
		}
		opts = append(opts, creds.ClientOpts()...)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Published{}, fmt.Errorf("broker client: %w", err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: topic, Value: ce, Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(eventsig.ContentType)}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return Published{}, fmt.Errorf("produce to %s as %s: %w", topic, app, err)
	}
	return Published{ID: id, Topic: topic, Partition: rec.Partition, Offset: rec.Offset, CloudEvent: ce}, nil
}

// Read returns every event of topic from its start to its end as Read begins.
func (b Bus) Read(ctx context.Context, topic string) ([]Event, error) {
	admin, err := b.admin()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(admin.ClientOpts(), kgo.SeedBrokers(b.Brokers...))...)
	if err != nil {
		return nil, fmt.Errorf("broker client: %w", err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	var out []Event
	if len(want) == 0 {
		return nil, nil
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = b.Tail(rctx, topic, TailOptions{FromStart: true}, func(e Event) error {
		out = append(out, e)
		if e.Offset+1 >= want[e.Partition] {
			delete(want, e.Partition)
		}
		if len(want) == 0 {
			cancel()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(want) > 0 {
		return out, fmt.Errorf("read %s: %w before its end", topic, ctx.Err())
	}
	return out, nil
}

// WaitHandled waits until consumer group (an app id: Dapr's consumer group) has committed
// past the published event: its sidecar delivered it and the app answered (handled, dropped
// or dead-lettered). It asks the broker every interval, over one connection, until ctx ends.
func (b Bus) WaitHandled(ctx context.Context, group string, ev Published, every time.Duration) error {
	admin, err := b.admin()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(admin.ClientOpts(), kgo.SeedBrokers(b.Brokers...))...)
	if err != nil {
		return fmt.Errorf("broker client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last error
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		switch o, ok := offs.Lookup(ev.Topic, ev.Partition); {
		case err != nil:
			last = fmt.Errorf("offsets of group %s: %w", group, err)
		case ok && o.Err == nil && o.At > ev.Offset:
			return nil
		default:
			last = fmt.Errorf("%s has not committed past %s[%d]@%d", group, ev.Topic, ev.Partition, ev.Offset)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("event %s: %w (%v)", ev.ID, ctx.Err(), last)
		case <-time.After(every):
		}
	}
}

// user returns app's broker credentials from the access list and the secrets file.
func (b Bus) user(f localsecrets.File, app string) (kafkabroker.Credentials, error) {
	for _, u := range b.ACLs.Users {
		if u.Name == app {
			pw := f[u.Secret][u.Key]
			if pw == "" {
				return kafkabroker.Credentials{}, fmt.Errorf("%s has no broker password for %s (%s/%s): goplt run or goplt env creates it", b.SecretsFile, app, u.Secret, u.Key)
			}
			return kafkabroker.Credentials{User: u.Name, Password: pw}, nil
		}
	}
	return kafkabroker.Credentials{}, fmt.Errorf("%s is no broker user in %s: only apps with events have one", app, brokeracl.LocalFile)
}

func (b Bus) admin() (kafkabroker.Credentials, error) { return infra.BrokerAdmin(b.SecretsFile) }

// publicKeys reads the published event keys (app -> JWKS) from the secrets file.
func (b Bus) publicKeys(context.Context) (map[string]string, error) {
	f, err := localsecrets.Read(b.SecretsFile)
	if err != nil {
		return nil, err
	}
	return f[eventsig.PublicKeysSecret], nil
}
