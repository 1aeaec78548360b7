package main

import "github.com/goplt/goplt/internal/envvar"

// Jobs is every benchmark the report holds, in the order they run (fast, stack-less ones
// first). stockDaprd, when set, adds the footprint run on Dapr's stock daprd. profiles is the
// folder for the CPU profiles the paths job takes of the gateway and blog under load.
func Jobs(stockDaprd, profiles string) []Job {
	jobs := []Job{
		{Name: "authz", Title: "Authorization decisions: goplt's indexed engine vs plain ory/ladon (one core)",
			Pkg: "github.com/goplt/goplt/apps/authz/engine", Bench: "Decide", Benchtime: "1s",
			Rows: []Row{
				{"10 policies (ns per decision)", "Decide/engine/policies=10 ns/op", "Decide/ladon/policies=10 ns/op", Lower},
				{"100 policies (ns per decision)", "Decide/engine/policies=100 ns/op", "Decide/ladon/policies=100 ns/op", Lower},
				{"1,000 policies (ns per decision)", "Decide/engine/policies=1000 ns/op", "Decide/ladon/policies=1000 ns/op", Lower},
				{"10,000 policies (ns per decision)", "Decide/engine/policies=10000 ns/op", "Decide/ladon/policies=10000 ns/op", Lower},
			}},
		{Name: "token", Title: "Access tokens (EdDSA): verify beside sign, and the verified-token cache",
			Pkg: "github.com/goplt/goplt/internal/token", Bench: "Sign|Verify", Benchtime: "1s",
			Rows: []Row{
				{"verify vs sign (µs)", "Verify ns/op", "Sign ns/op", Lower},
				{"cached verify vs verify (µs)", "CachedVerify ns/op", "Verify ns/op", Lower},
				{"the gateway's strict cached verify, 10,000 ended sessions and 10,000 stale users listed, vs cached verify (µs)", "StrictCachedVerify ns/op", "CachedVerify ns/op", Lower},
			}},
		{Name: "eventsig", Title: "Event signatures (Ed25519 over id, source, type, topic, time and canonical data), per event",
			Pkg: "github.com/goplt/goplt/internal/eventsig", Bench: "SignVerify", Benchtime: "1s",
			Rows: []Row{
				{"sign (µs)", "SignVerify/sign ns/op", "", Lower},
				{"verify vs sign (µs)", "SignVerify/verify ns/op", "SignVerify/sign ns/op", Lower},
				{"canonical data alone vs sign (µs)", "SignVerify/canonical-only ns/op", "SignVerify/sign ns/op", Lower},
			}},
		{Name: "contracts", Title: "Event contracts: checking a platform event's payload against its JSON Schema (compiled once), per publish",
			Pkg: "github.com/goplt/goplt/internal/contracts", Bench: "Check", Benchtime: "1s",
			Rows: []Row{
				{"identity.user.created (µs)", "Check/identity.user.created ns/op", "", Lower},
				{"auth.login.failed (µs)", "Check/auth.login.failed ns/op", "", Lower},
			}},
		{Name: "compile", Title: "goplt validate + generate: 200 generated modules vs 20 (10x the input)",
			Pkg: "github.com/goplt/goplt/internal/compile", Bench: "ValidateGenerate(20|200)$", Benchtime: "5x",
			Rows: []Row{
				{"200 modules vs 20 (ms)", "ValidateGenerate200 ns/op", "ValidateGenerate20 ns/op", Lower},
			}},
		{Name: "hop", Title: "What the gateway adds, fake sidecar, one request at a time; checking request bodies against their schemas",
			Pkg: "github.com/goplt/goplt/apps/gateway/gateway", Bench: "Hop|CheckBody", Benchtime: "2s",
			Rows: []Row{
				{"gateway, authenticated vs direct (µs)", "Hop/gateway-authenticated ns/op", "Hop/direct ns/op", Lower},
				{"gateway, public vs direct (µs)", "Hop/gateway-public ns/op", "Hop/direct ns/op", Lower},
				{"POST /blog/posts through the gateway, body checked vs not (µs)", "Hop/post-checked ns/op", "Hop/post-unchecked ns/op", Lower},
				{"reading a blog post body, checked vs not (µs)", "CheckBody/blog-post ns/op", "CheckBody/blog-post-unchecked ns/op", Lower},
				{"reading a registration body, checked vs not (µs)", "CheckBody/registration ns/op", "CheckBody/registration-unchecked ns/op", Lower},
			}},
		{Name: "guard", Title: "The kernel's deletion guard: a signed-in user's write (a transaction inserting a row) in a module that cleans up after deleted users",
			Pkg: "github.com/goplt/goplt/internal/kernel", Bench: "DeletionGuard", Benchtime: "3s", Stack: true,
			Rows: []Row{
				{"a write, guarded vs unguarded (µs)", "DeletionGuard/guarded ns/op", "DeletionGuard/unguarded ns/op", Lower},
			}},
		{Name: "state", Title: "State through the sidecar: a write through the gateway with an Idempotency-Key vs without, at 200 and 50 req/s; one row through Dapr's state API vs the same SQL straight to PostgreSQL",
			Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Idempotency|StateVsSQL", Benchtime: "1x", Stack: true,
			Rows: []Row{
				{"PUT /billing/subscription p50, with a key vs without (ms)", "Idempotency keyed-p50-ms", "Idempotency plain-p50-ms", Lower},
				{"the same, p99 (ms)", "Idempotency keyed-p99-ms", "Idempotency plain-p99-ms", Lower},
				{"the same, CPU per request, whole machine (µs)", "Idempotency keyed-cpu-us", "Idempotency plain-cpu-us", Lower},
				{"the same at 50 req/s, p50 (ms)", "Idempotency keyed-p50-ms-at50", "Idempotency plain-p50-ms-at50", Lower},
				{"write one row: state API through the sidecar vs SQL (µs)", "StateVsSQL state-write-ns/op", "StateVsSQL sql-write-ns/op", Lower},
				{"read one row: state API through the sidecar vs SQL (µs)", "StateVsSQL state-read-ns/op", "StateVsSQL sql-read-ns/op", Lower},
			}},
		{Name: "paths", Title: "One authenticated GET through the whole platform: gateway vs two bare sidecars vs direct",
			Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Paths", Benchtime: "1x", Stack: true,
			Env: []string{"GOPLT_BENCH_PROFILES=" + profiles},
			Rows: []Row{
				{"throughput, gateway vs bare sidecars (req/s)", "Paths gateway-req/s", "Paths sidecars-req/s", Higher},
				{"throughput, bare sidecars vs direct (req/s)", "Paths sidecars-req/s", "Paths direct-req/s", Higher},
				{"p50 the gateway adds at 200 req/s (ms)", "Paths gateway-added-p50-ms@200", "", Lower},
				{"CPU per request, whole machine: gateway vs bare sidecars (µs)", "Paths gateway-machine-cpu-µs/req", "Paths sidecars-machine-cpu-µs/req", Lower},
				{"CPU per request: the gateway app vs the bare path's first sidecar (µs)", "Paths gateway-app-cpu-µs/req", "Paths console-sidecar-cpu-µs/req", Lower},
				{"CPU per request: the gateway's sidecar vs the bare path's first sidecar (µs)", "Paths gateway-sidecar-cpu-µs/req", "Paths console-sidecar-cpu-µs/req", Lower},
				{"bare sidecars, every request marked sampled vs not, no span exporter: throughput (req/s)", "Paths traced-req/s", "Paths sidecars-req/s", Higher},
				{"the same: CPU per request of the first sidecar (µs)", "Paths traced-console-sidecar-cpu-µs/req", "Paths console-sidecar-cpu-µs/req", Lower},
				{"the same: CPU per request of blog's sidecar (µs)", "Paths traced-blog-sidecar-cpu-µs/req", "Paths blog-sidecar-cpu-µs/req", Lower},
			}},
		{Name: "tracing-off", Title: "The gateway path at saturation with tracing off (no exporter)",
			Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Tracing", Benchtime: "1x", Stack: true,
			Rows: []Row{
				{"throughput (req/s)", "Tracing gateway-req/s", "", Higher},
				{"CPU per request, whole machine (µs)", "Tracing machine-cpu-µs/req", "", Lower},
			}},
		{Name: "tracing-local", Title: "The same with the local profile's tracing: every app and sidecar exporting to a real OpenTelemetry Collector, sampling rate 0 (the local default), vs tracing off",
			Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Tracing", Benchtime: "1x", Stack: true, Env: []string{"GOPLT_BENCH_TRACING=0"}, Baseline: "tracing-off",
			Rows: []Row{
				{"throughput (req/s)", "Tracing gateway-req/s", "tracing-off:Tracing gateway-req/s", Higher},
				{"CPU per request, whole machine (µs)", "Tracing machine-cpu-µs/req", "tracing-off:Tracing machine-cpu-µs/req", Lower},
			}},
		{Name: "tracing-10", Title: "The same at 10 % sampling (the Kubernetes profile's rate): one request in ten traced through gateway, sidecars, blog and its SQL, vs tracing off",
			Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Tracing", Benchtime: "1x", Stack: true, Env: []string{"GOPLT_BENCH_TRACING=0.1"}, Baseline: "tracing-off",
			Rows: []Row{
				{"throughput (req/s)", "Tracing gateway-req/s", "tracing-off:Tracing gateway-req/s", Higher},
				{"CPU per request, whole machine (µs)", "Tracing machine-cpu-µs/req", "tracing-off:Tracing machine-cpu-µs/req", Lower},
			}},
		{Name: "config", Title: "Two sidecars, Consul name resolution: goplt's generated configuration (resolver cache) vs Dapr's defaults",
			Pkg: "github.com/goplt/goplt/internal/runner", Bench: "ConfigVsDefaults", Benchtime: "1x", Stack: true,
			Rows: []Row{{"throughput, 16 workers (req/s)", "ConfigVsDefaults withcache-req/s", "ConfigVsDefaults nocache-req/s", Higher}}},
		{Name: "audit", Title: "Audit log: ingest through broker and sidecar (bulk subscribe)",
			Pkg: "github.com/goplt/goplt/apps/audit/audit", Bench: "IngestThroughBroker", Benchtime: "40000x", Stack: true,
			Rows: []Row{
				{"ingest, 40,000 events (events/s)", "IngestThroughBroker events/s", "", Higher},
				{"CPU per event, whole machine (µs)", "IngestThroughBroker machine-cpu-µs/event", "", Lower},
				{"CPU per event: the audit app, signature and contract checks included (µs)", "IngestThroughBroker audit-cpu-µs/event", "", Lower},
				{"CPU per event: audit's sidecar (µs)", "IngestThroughBroker audit.dapr-cpu-µs/event", "", Lower},
				{"CPU per event: PostgreSQL (µs)", "IngestThroughBroker postgres-cpu-µs/event", "", Lower},
				{"CPU per event: the producer, which signs each event (µs)", "IngestThroughBroker load-cpu-µs/event", "", Lower},
			}},
		{Name: "audit-append", Title: "Audit log: chained batch append vs plain COPY of the same rows",
			Pkg: "github.com/goplt/goplt/apps/audit/audit", Bench: "Append", Benchtime: "300x", Stack: true,
			Rows: []Row{{"a batch of 100 per transaction (ms)", "Append/chain ns/op", "Append/plain-copy ns/op", Lower}}},
		{Name: "audit-latency", Title: "Audit log: publish-to-commit latency at 1,000 events/s, and verify",
			Pkg: "github.com/goplt/goplt/apps/audit/audit", Bench: "IngestLatency|Verify", Benchtime: "1x", Stack: true,
			Rows: []Row{
				{"publish-to-commit p50 at 1,000/s (ms)", "IngestLatency p50-ms", "", Lower},
				{"publish-to-commit p99 at 1,000/s (ms)", "IngestLatency p99-ms", "", Lower},
				{"verify (s per million rows)", "Verify s/million", "", Lower},
			}},
		{Name: "login", Title: "A whole login through the sidecars (argon2id dominates by design)",
			Pkg: "github.com/goplt/goplt/apps/auth/auth", Bench: "Login", Benchtime: "20x", Stack: true,
			Rows: []Row{{"login (ms)", "Login ns/op", "", Lower}}},
		{Name: "footprint", Title: "The whole platform's memory with goplt's daprd (all apps, sidecars and infrastructure)",
			Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Footprint", Benchtime: "1x", Stack: true,
			Rows: footprintRows("")},
		{Name: "reload", Title: "The inner loop: a saved change to notes (two replicas) until both serve it, goplt run --watch vs stopping and running again",
			Pkg: "github.com/goplt/goplt/internal/runner", Bench: "Reload", Benchtime: "3x", Stack: true,
			Rows: []Row{{"save to served: --watch (rebuild, restart the app alone) vs a full restart (ms)", "Reload reload-ms", "Reload full-restart-ms", Lower}}},
		{Name: "start", Title: "One sidecar from process start to healthy, goplt's daprd",
			Pkg: "github.com/goplt/goplt/internal/runner", Bench: "SidecarStart", Benchtime: "5x", Stack: true,
			Rows: []Row{{"start-up (ms)", "SidecarStart ms/start", "", Lower}}},
	}
	if stockDaprd != "" {
		env := []string{envvar.Daprd + "=" + stockDaprd}
		jobs = append(jobs,
			Job{Name: "footprint-stock", Title: "Footprint: goplt's daprd vs Dapr's stock daprd (-tags allcomponents), same files",
				Pkg: "github.com/goplt/goplt/apps/gateway/e2e", Bench: "Footprint", Benchtime: "1x", Stack: true, Env: env, Baseline: "footprint",
				Rows: footprintRows("footprint")},
			Job{Name: "start-stock", Title: "Sidecar start-up: goplt's daprd vs the stock daprd",
				Pkg: "github.com/goplt/goplt/internal/runner", Bench: "SidecarStart", Benchtime: "5x", Stack: true, Env: env, Baseline: "start",
				Rows: []Row{{"start-up (ms)", "start:SidecarStart ms/start", "SidecarStart ms/start", Lower}}},
		)
	}
	return jobs
}

// footprintRows compares the footprint metrics with the baseline job's (none: values alone).
func footprintRows(baseline string) []Row {
	var rows []Row
	for _, m := range []struct{ label, metric string }{
		{"sidecar RSS idle, average (MiB)", "MiB-sidecar-idle-avg"},
		{"sidecar RSS idle, largest (MiB)", "MiB-sidecar-idle-max"},
		{"sidecar private memory idle, average (MiB)", "MiB-sidecar-idle-private-avg"},
		{"sidecar RSS peak at 200 req/s through the gateway (MiB)", "MiB-sidecar-peak-200rps"},
		{"sidecar RSS peak at saturation (MiB)", "MiB-sidecar-peak-saturation"},
		{"apps RSS, all eight (MiB)", "MiB-apps"},
		{"largest app RSS (MiB)", "MiB-app-max"},
		{"infrastructure PSS (MiB)", "MiB-infra-pss"},
		{"whole platform RSS, summed (MiB)", "MiB-platform-rss"},
		{"whole platform PSS, what it really occupies (MiB)", "MiB-platform-pss"},
		{"daprd binary (MiB)", "MiB-daprd-binary"},
	} {
		r := Row{Label: m.label, Better: Lower}
		if baseline == "" {
			r.Value = "Footprint " + m.metric
		} else {
			r.Value = baseline + ":Footprint " + m.metric
			r.Baseline = "Footprint " + m.metric
		}
		rows = append(rows, r)
	}
	return rows
}
