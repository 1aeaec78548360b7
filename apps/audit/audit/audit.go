// Package audit is the audit service. It receives the security and business events of every
// module (declarative Dapr subscriptions on Kafka), appends each once (idempotent by event id:
// delivery is at least once) to a hash-chained log in its schema, signs checkpoints of the
// head, answers queries and exports, verifies the chain, and keeps the events it could not
// process (from its dead-letter topic) where an API shows them.
package audit

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/apps/audit/contract"
	"github.com/goplt/goplt/apps/audit/permissions"
	"github.com/goplt/goplt/internal/envvar"
	"github.com/goplt/goplt/internal/kernel"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/policydoc"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Topics are the topics audit records, each arriving at /events/<topic>: those whose
// publication in a manifest says audit: true, which goplt generate puts into audit's contract
// (and its subscriptions, broker ACLs and Dapr resources). No list to edit here.
func Topics() []string {
	return slices.Sorted(maps.Keys(contract.Events().Subscribes))
}

// DeadLetterTopic receives the events audit dropped as unprocessable.
const DeadLetterTopic = "audit.deadletter"

// Module is the audit module.
type Module struct {
	k     *kernel.Kernel
	key   ed25519.PrivateKey
	kid   string
	every time.Duration
	// witnesses keep checkpoints outside the database; witnessedBy[i] is what witnesses[i]
	// last took (touched by the checkpoint loop only).
	witnesses   []witness
	witnessedBy []witnessed
	witnessDir  string
}

// New returns the module.
func New() *Module { return &Module{} }

// Name implements kernel.Module.
func (m *Module) Name() string { return "audit" }

// Init implements kernel.Module.
func (m *Module) Init(k *kernel.Kernel) error {
	k.UseContracts(contract.Events())
	m.k = k
	m.every = 10 * time.Second
	if v := os.Getenv(envvar.AuditCheckpointEvery); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("GOPLT_AUDIT_CHECKPOINT_EVERY=%q: want a positive duration", v)
		}
		m.every = d
	}
	k.Migrations(migrations, "migrations")
	k.DefinePermissions(permissions.Declared()...)
	k.UseRoutes(contract.Routes()) // who may call each route: the manifest says
	k.HandleFunc("GET /audit/entries", m.query)
	k.HandleFunc("GET /audit/export", m.export)
	k.HandleFunc("GET /audit/verify", m.verify)
	k.HandleFunc("GET /audit/dead-letters", m.deadLetters)
	for _, t := range Topics() {
		k.SubscribeBulk(t, "/events/"+t, m.record)
	}
	k.SubscribeDeadLetters(DeadLetterTopic, "/events/"+DeadLetterTopic, m.deadLetter)
	return nil
}

// Start implements kernel.Starter: it reads the checkpoint key, opens the witnesses and starts
// checkpointing.
func (m *Module) Start(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sec, err := m.k.Secret(lctx, platformsecrets.AuditCheckpointKey)
	if err != nil {
		return err
	}
	if m.key, err = platformsecrets.CheckpointKey(sec[platformsecrets.AuditCheckpointSeed]); err != nil {
		return err
	}
	m.kid = KeyID(m.key.Public().(ed25519.PublicKey))
	dir, err := m.k.Volume(chain.WitnessVolume)
	if err == nil {
		err = chain.CreateWitness(dir)
	}
	if err != nil {
		return fmt.Errorf("the checkpoint witness: %w", err)
	}
	m.witnessDir = dir
	m.witnesses = []witness{dirWitness{dir}, topicWitness{m.k}}
	if u := os.Getenv(envvar.AuditWitnessURL); u != "" {
		m.witnesses = append(m.witnesses, urlWitness{url: u, client: &http.Client{}})
	}
	m.witnessedBy = make([]witnessed, len(m.witnesses))
	if err := m.observeChain(); err != nil {
		return err
	}
	go m.checkpoints(ctx)
	return nil
}

// observeChain reports the chain's length and its latest checkpoint's position when metrics
// are read: a head that stops moving, or checkpoints that fall behind it, show.
func (m *Module) observeChain() error {
	meter := m.k.Meter()
	length, err := meter.Int64ObservableGauge("goplt.audit.chain.length", metric.WithDescription("Entries in the audit log's hash chain"))
	if err != nil {
		return err
	}
	signed, err := meter.Int64ObservableGauge("goplt.audit.checkpoint.position", metric.WithDescription("Position of the latest signed checkpoint"))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var head, cp int64
		err := m.k.DB().QueryRow(ctx, `SELECT (SELECT coalesce(max(pos), 0) FROM log), (SELECT coalesce(max(pos), 0) FROM checkpoints)`).Scan(&head, &cp)
		if err != nil {
			return err
		}
		o.ObserveInt64(length, head)
		o.ObserveInt64(signed, cp)
		return nil
	}, length, signed)
	return err
}

// KeyID names a checkpoint key by its public key's first bytes.
func KeyID(pub ed25519.PublicKey) string { return fmt.Sprintf("%x", pub[:6]) }

func (m *Module) checkpoints(ctx context.Context) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := pgx.BeginFunc(ctx, m.k.DB(), func(tx pgx.Tx) error {
				_, err := chain.WriteCheckpoint(ctx, tx, m.key, m.kid)
				return err
			})
			if err != nil && ctx.Err() == nil {
				m.k.Log().Warn("checkpoint failed; will retry", "err", err)
			}
			m.witnessAll(ctx)
		}
	}
}

// record appends a batch of events to the chain in one transaction (Dapr bulk subscribe
// delivers up to 100 at once). An event that can never be recorded is dropped to the
// dead-letter topic on its own; a database error makes Dapr redeliver the others, which the
// event-id check then records once.
func (m *Module) record(ctx context.Context, events []kernel.Event) []error {
	errs := make([]error, len(events))
	var entries []*chain.Entry
	var index []int
	for i, e := range events {
		if e.ID == "" {
			errs[i] = fmt.Errorf("%w: event without an id", kernel.ErrDrop)
			continue
		}
		entry, err := entryFor(e)
		if err != nil {
			errs[i] = fmt.Errorf("%w: %v", kernel.ErrDrop, err)
			continue
		}
		entries = append(entries, entry)
		index = append(index, i)
	}
	if len(entries) == 0 {
		return errs
	}
	err := pgx.BeginFunc(ctx, m.k.DB(), func(tx pgx.Tx) error {
		_, err := chain.AppendBatch(ctx, tx, entries)
		return err
	})
	if err != nil {
		for _, i := range index {
			errs[i] = err
		}
	}
	return errs
}

// entryFor maps an event to an audit entry. The fields audit indexes come from the payload
// when it names them (actor, action, resource, outcome: the gateway's request events), and
// otherwise from the platform's payload conventions (userId, sessionId, policyId) and the
// topic.
func entryFor(e kernel.Event) (*chain.Entry, error) {
	if len(e.Data) == 0 || e.Data[0] != '{' {
		return nil, errors.New("data is not a JSON object")
	}
	payload, err := e.CanonicalData()
	if err != nil {
		return nil, err
	}
	var p struct {
		Actor, Action, Resource, Outcome string
		UserID                           string `json:"userId"`
		Email                            string `json:"email"`
		SessionID                        string `json:"sessionId"`
		PolicyID                         string `json:"policyId"`
		At                               time.Time
	}
	if err := e.Decode(&p); err != nil {
		return nil, err
	}
	en := &chain.Entry{EventID: e.ID, Topic: e.Topic, Source: e.Source, Payload: payload,
		Actor: p.Actor, Action: p.Action, Resource: p.Resource, Outcome: p.Outcome, OccurredAt: p.At, RecordedAt: time.Now()}
	if en.Actor == "" {
		switch {
		case p.UserID != "":
			en.Actor = policydoc.User(p.UserID)
		case p.Email != "":
			en.Actor = "email:" + p.Email
		default:
			en.Actor = policydoc.App(e.Source)
		}
	}
	if en.Action == "" {
		en.Action = e.Topic
	}
	if en.Resource == "" {
		switch {
		case p.PolicyID != "":
			en.Resource = "policy:" + p.PolicyID
		case p.SessionID != "":
			en.Resource = "session:" + p.SessionID
		case p.UserID != "":
			en.Resource = policydoc.User(p.UserID)
		}
	}
	if en.Outcome == "" {
		en.Outcome = "success"
		for _, s := range []string{".failed", ".throttled", ".reused", ".denied"} {
			if strings.HasSuffix(e.Topic, s) {
				en.Outcome = "failure"
			}
		}
	}
	if en.OccurredAt.IsZero() {
		en.OccurredAt = en.RecordedAt
	}
	return en, nil
}

// deadLetter keeps an event audit dropped. It always succeeds: a dead letter that fails again
// would loop.
func (m *Module) deadLetter(ctx context.Context, e kernel.Event) error {
	raw := string(e.Data)
	_, err := m.k.DB().Exec(ctx, `INSERT INTO dead_letters (event_id, topic, event) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING`,
		e.ID, e.Topic, raw)
	if err != nil {
		return err // the database is down: let Dapr redeliver
	}
	m.k.Log().WarnContext(ctx, "dead letter recorded", "event_id", e.ID)
	return nil
}
