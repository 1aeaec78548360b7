// Package dashboard is the developer dashboard `goplt run` serves on loopback: the module
// graph with each instance's live health, ports and restarts; the route table; topics with
// their publishers, subscribers and dead letters; the last audit entries and whether the
// chain verifies; every generated file with the manifest lines behind it; and request traces,
// received from the sidecars over OTLP/HTTP and drawn as waterfalls. It is read-only,
// server-rendered, and its few assets are embedded.
package dashboard

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	collectorlogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/internal/compile"
	"github.com/goplt/goplt/internal/infra"
	"github.com/goplt/goplt/internal/localsecrets"
	"github.com/goplt/goplt/internal/manifest"
	"github.com/goplt/goplt/internal/platformsecrets"
	"github.com/goplt/goplt/internal/runner"
)

// Options say what the dashboard shows.
type Options struct {
	Set       *manifest.Set
	Artifacts []compile.Artifact
	Infra     infra.Endpoints
	Log       *slog.Logger
}

// Server is the dashboard. Its handler works before the apps run (the sidecars need the OTLP
// endpoint at start); SetGroup hands it the running apps.
type Server struct {
	opts    Options
	traces  *traceStore
	metrics *metricStore
	logs    *logStore

	mu      sync.Mutex
	group   *runner.Group
	health  map[*runner.App]health
	dead    map[string]int64 // dead-letter topic -> records
	entries []auditEntry
	verify  string // the audit chain's last verification, in words
	checked time.Time

	kafka *kgo.Client // made on first use, closed when Run ends
}

type health struct {
	app, sidecar bool
}

type auditEntry struct {
	Pos                                    int64
	Topic, Source, Actor, Action, Resource string
	Outcome                                string
	OccurredAt                             time.Time
}

// New returns a dashboard over opts.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, traces: newTraceStore(200), metrics: newMetricStore(), logs: newLogStore(20000), health: map[*runner.App]health{}, dead: map[string]int64{}}
}

// SetGroup gives the dashboard the running apps.
func (s *Server) SetGroup(g *runner.Group) {
	s.mu.Lock()
	s.group = g
	s.mu.Unlock()
}

// Run refreshes health (every second), dead-letter counts and the audit view (every 5 s)
// until ctx ends.
func (s *Server) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer func() {
		if s.kafka != nil {
			s.kafka.Close()
		}
	}()
	for n := 0; ; n++ {
		s.pollHealth(ctx)
		if n%5 == 0 {
			s.pollDeadLetters(ctx)
			s.pollAudit(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) instances() []*runner.App {
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	var out []*runner.App
	for _, m := range s.opts.Set.Modules {
		out = append(out, g.Instances(m.Spec.App.ID)...)
	}
	return out
}

func (s *Server) pollHealth(ctx context.Context) {
	cl := &http.Client{Timeout: 800 * time.Millisecond}
	ok := func(url string) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := cl.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode/100 == 2
	}
	got := map[*runner.App]health{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range s.instances() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := health{sidecar: ok(a.DaprHTTP() + "/v1.0/healthz")}
			h.app = a.Process() != nil && ok("http://127.0.0.1:"+strconv.Itoa(a.AppPort)+"/healthz")
			mu.Lock()
			got[a] = h
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.health = got
	s.mu.Unlock()
}

func (s *Server) pollDeadLetters(ctx context.Context) {
	var topics []string
	for _, m := range s.opts.Set.Modules {
		for _, sub := range m.Spec.Events.Subscribes {
			topics = append(topics, sub.DeadLetter())
		}
	}
	if len(topics) == 0 {
		return
	}
	if s.kafka == nil { // Run's goroutine alone touches it
		admin, err := s.opts.Infra.KafkaAdmin()
		if err != nil {
			return
		}
		if s.kafka, err = kgo.NewClient(append(admin.ClientOpts(), kgo.SeedBrokers(s.opts.Infra.KafkaBrokers...))...); err != nil {
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(s.kafka).ListEndOffsets(ctx, topics...)
	if err != nil {
		return
	}
	dead := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			dead[o.Topic] += o.Offset
		}
	})
	s.mu.Lock()
	s.dead = dead
	s.mu.Unlock()
}

func (s *Server) pollAudit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.opts.Infra.PostgresURL)
	if err != nil {
		return
	}
	cfg.RuntimeParams["search_path"] = "audit" // chain.Verify reads audit's tables unqualified
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT pos, topic, source, actor, action, resource, outcome, occurred_at FROM audit.log ORDER BY pos DESC LIMIT 15`)
	if err != nil {
		s.setAudit(nil, "audit's log is not there yet", time.Time{})
		return
	}
	var es []auditEntry
	for rows.Next() {
		var e auditEntry
		if err := rows.Scan(&e.Pos, &e.Topic, &e.Source, &e.Actor, &e.Action, &e.Resource, &e.Outcome, &e.OccurredAt); err == nil {
			es = append(es, e)
		}
	}
	rows.Close()
	// Verifying reads the whole log: at most every verifyEvery.
	s.mu.Lock()
	verdict, checked := s.verify, s.checked
	s.mu.Unlock()
	// A verdict other than intact is checked again at the next poll: while the stack starts,
	// audit's witness file may not exist yet.
	if !checked.IsZero() && time.Since(checked) < verifyEvery && strings.HasPrefix(verdict, "verifies") {
		s.setAudit(es, verdict, checked)
		return
	}
	verdict = "not checked: no checkpoint key"
	if pub, err := checkpointKey(s.opts.Infra.SecretsFile); err == nil {
		// The witness file on audit's volume (the one the local stack gives it), read first: it
		// may then only lag the rows read after it, never run ahead of them.
		file := chain.ReadWitnessDir(chain.LocalWitnessDir(s.opts.Infra.VolumesDir))
		res, err := chain.Verify(ctx, conn, pub, file)
		switch {
		case err != nil:
			verdict = "could not verify: " + err.Error()
		case res.OK:
			verdict = fmt.Sprintf("verifies: %d entries, hash chain and signed checkpoints intact (database and witness file)", res.Rows)
		case res.FirstBad == 0:
			verdict = "NOT VERIFIED: " + res.Problem
		default:
			verdict = fmt.Sprintf("TAMPERED at position %d: %s", res.FirstBad, res.Problem)
		}
	}
	s.setAudit(es, verdict, time.Now())
}

// verifyEvery bounds how often the dashboard reads the whole audit log.
const verifyEvery = 30 * time.Second

func (s *Server) setAudit(es []auditEntry, verdict string, checked time.Time) {
	s.mu.Lock()
	s.entries, s.verify, s.checked = es, verdict, checked
	s.mu.Unlock()
}

func checkpointKey(secretsFile string) (ed25519.PublicKey, error) {
	f, err := localsecrets.Read(secretsFile)
	if err != nil {
		return nil, err
	}
	k, err := platformsecrets.CheckpointKey(f[platformsecrets.AuditCheckpointKey][platformsecrets.AuditCheckpointSeed])
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// Handler serves the pages, and the OTLP receiver at /v1/traces.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page("overview", s.overview))
	mux.HandleFunc("GET /routes", s.page("routes", s.routes))
	mux.HandleFunc("GET /topics", s.page("topics", s.topics))
	mux.HandleFunc("GET /audit", s.page("audit", s.audit))
	mux.HandleFunc("GET /artifacts", s.page("artifacts", s.artifacts))
	mux.HandleFunc("GET /traces", s.page("traces", s.traceList))
	mux.HandleFunc("GET /traces/{id}", s.page("trace", s.traceDetail))
	mux.HandleFunc("GET /static/dashboard.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		_, _ = w.Write(css)
	})
	mux.HandleFunc("GET /metrics", s.page("metrics", s.metricsPage))
	mux.HandleFunc("GET /logs", s.page("logs", s.logsPage))
	mux.HandleFunc("POST /v1/traces", s.traces.receiveOTLP)
	mux.HandleFunc("POST /v1/metrics", s.metrics.receiveOTLP)
	// The Logs page takes the lines goplt run prints (Line), the apps' and the sidecars';
	// the apps' OTLP log export to the dashboard is acknowledged and dropped.
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, r *http.Request) {
		var req collectorlogs.ExportLogsServiceRequest
		if decodeOTLP(w, r, &req, "logs") {
			answerOTLP(w, r, &collectorlogs.ExportLogsServiceResponse{})
		}
	})
	return mux
}

// instanceRow is one app instance as the overview shows it.
type instanceRow struct {
	Module, Name, State         string
	AppPort, HTTPPort, GRPCPort int
	AppPid, SidecarPid          int
	AppOK, SidecarOK            bool
	Restarts                    int
}

func (s *Server) rows() []instanceRow {
	s.mu.Lock()
	hs := s.health
	s.mu.Unlock()
	var out []instanceRow
	for _, a := range s.instances() {
		h := hs[a]
		r := instanceRow{Module: a.Spec.ID, Name: a.Name(), AppPort: a.AppPort, HTTPPort: a.HTTPPort, GRPCPort: a.GRPCPort,
			AppOK: h.app, SidecarOK: h.sidecar, Restarts: a.Restarts(), State: "healthy"}
		if p := a.Process(); p != nil {
			r.AppPid = p.Pid()
		}
		if p := a.Sidecar(); p != nil {
			r.SidecarPid = p.Pid()
		}
		if !h.app || !h.sidecar {
			r.State = "down"
		}
		out = append(out, r)
	}
	return out
}

func (s *Server) overview(*http.Request) (any, error) {
	rows := s.rows()
	state := map[string]string{}
	for _, r := range rows {
		switch {
		case state[r.Module] == "":
			state[r.Module] = r.State
		case state[r.Module] != r.State:
			state[r.Module] = "degraded"
		}
	}
	return struct {
		Graph     graphView
		Instances []instanceRow
	}{layout(s.opts.Set, state), rows}, nil
}

type routeRow struct {
	Method, Path, Module, Access string
	Audit                        bool
}

func (s *Server) routes(*http.Request) (any, error) {
	var out []routeRow
	for _, m := range s.opts.Set.Modules {
		for _, r := range m.Spec.Routes {
			access := "permission " + r.Permission
			switch {
			case r.Public:
				access = "public"
			case len(r.Callers) > 0:
				access = "internal: " + strings.Join(r.Callers, ", ")
			}
			out = append(out, routeRow{r.Method, r.Path, m.Metadata.Name, access, r.Audit})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].Method < out[j].Path+out[j].Method })
	return out, nil
}

type topicRow struct {
	Topic, Publisher, Schema string
	Version                  int
	Subscribers              []string
	DeadLetters              map[string]int64 // dead-letter topic -> records
}

func (s *Server) topics(*http.Request) (any, error) {
	s.mu.Lock()
	dead := s.dead
	s.mu.Unlock()
	byTopic := map[string]*topicRow{}
	get := func(t string) *topicRow {
		if byTopic[t] == nil {
			byTopic[t] = &topicRow{Topic: t, Publisher: "external", DeadLetters: map[string]int64{}}
		}
		return byTopic[t]
	}
	for _, m := range s.opts.Set.Modules {
		for _, p := range m.Spec.Events.Publishes {
			t := get(p.Topic)
			t.Publisher, t.Schema, t.Version = m.Metadata.Name, p.Schema, p.PayloadVersion()
		}
		for _, sub := range m.Spec.Events.Subscribes {
			t := get(sub.Topic)
			t.Subscribers = append(t.Subscribers, m.Spec.App.ID)
			t.DeadLetters[sub.DeadLetter()] = dead[sub.DeadLetter()]
		}
	}
	var out []*topicRow
	for _, t := range byTopic {
		sort.Strings(t.Subscribers)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

func (s *Server) audit(*http.Request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return struct {
		Entries []auditEntry
		Verify  string
		Checked time.Time
	}{s.entries, s.verify, s.checked}, nil
}

type artifactRow struct {
	Path    string
	Sources []compile.Source
}

func (s *Server) artifacts(r *http.Request) (any, error) {
	var out []artifactRow
	want := r.URL.Query().Get("path")
	for _, a := range s.opts.Artifacts {
		if want != "" && a.Path != want {
			continue
		}
		out = append(out, artifactRow{a.Path, a.Sources})
	}
	return struct {
		Selected string
		Files    []artifactRow
	}{want, out}, nil
}

func (s *Server) traceList(*http.Request) (any, error) { return s.traces.list(), nil }

// Line takes one output line of an app or a sidecar (runner.Options.Lines): the Logs page
// keeps the latest 20,000.
func (s *Server) Line(app, instance, line string) { s.logs.Line(app, instance, line) }

// metricsPage is every app's metrics as they last arrived over OTLP, with each first
// sidecar's own Dapr metrics read from its Prometheus endpoint.
func (s *Server) metricsPage(r *http.Request) (any, error) {
	apps := s.metrics.byApp()
	seen := map[string]bool{}
	for _, a := range s.instances() {
		if seen[a.Spec.ID] || a.MetricsPort == 0 {
			continue
		}
		seen[a.Spec.ID] = true
		rows, err := scrapeSidecar(r.Context(), a.MetricsPort)
		if err != nil {
			continue // a sidecar restarting: the next refresh shows it
		}
		if apps[a.Spec.ID] == nil {
			apps[a.Spec.ID] = &appMetrics{App: a.Spec.ID}
		}
		apps[a.Spec.ID].Sidecar = rows
	}
	out := make([]*appMetrics, 0, len(apps))
	for _, a := range apps {
		if a.App != "" {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out, nil
}

func (s *Server) traceDetail(r *http.Request) (any, error) {
	t, ok := s.traces.get(r.PathValue("id"))
	if !ok {
		return nil, errNotFound
	}
	return waterfall(t), nil
}

// Start serves a dashboard on addr (loopback host:port; port 0 for any free one) until stop is
// called, and returns it with the address it listens on (also the OTLP endpoint to give
// the sidecars).
func Start(addr string, opts Options) (s *Server, listening string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, err
	}
	s = New(opts)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Serve(ln) }()
	go s.Run(ctx)
	return s, ln.Addr().String(), func() { cancel(); _ = srv.Close() }, nil
}
