# goplt: `make run` runs the platform locally, `make test` runs every test CI runs.
GO      ?= go
BIN     := bin/goplt
# Integration tests start real daprd, PostgreSQL, Kafka broker, Consul and Sentry processes.
# -p 1: integration packages each start a whole stack (PostgreSQL, broker, Consul, Sentry and
# several daprd) on free ports; one at a time on 2 cores, and no two processes racing for ports.
TESTFLAGS ?= -race -count=1 -timeout 20m -p 1
# Fuzz budgets are execution counts, not durations: a duration-based -fuzztime can fail with a
# spurious "context deadline exceeded" at its end (a race in Go's fuzz coordinator,
# golang/go#75804, unfixed in Go 1.26). About 20 s each on 2 cores.
FUZZ_LOAD ?= 100000x
FUZZ_DIFFERENTIAL ?= 15000x
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build images deps deps-kubernetes deps-otelcol deps-redocly system-deps run test test-short lint generate check-generated infra-up infra-down infra-status clean bench chaos

all: build

build:
	$(GO) build -o $(BIN) ./tools/goplt

# PostgreSQL server binaries (the local stack), Chromium (the dashboard's browser test), the
# CNCF distribution registry (the image tests push to it) and containerd, runc, the CNI plugins
# and iptables (the Kubernetes test's real node): installed from Debian's archive when missing
# (needs root).
system-deps:
	@need=""; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$$need chromium"; \
	command -v docker-registry >/dev/null 2>&1 || need="$$need docker-registry"; \
	command -v containerd >/dev/null 2>&1 || need="$$need containerd"; \
	command -v runc >/dev/null 2>&1 || need="$$need runc"; \
	test -x /usr/lib/cni/bridge || need="$$need containernetworking-plugins"; \
	command -v iptables >/dev/null 2>&1 || need="$$need iptables"; \
	if [ -z "$$need" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing from Debian's archive:$$need (apt-get install)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$need; \
	else echo "missing:$$need; install them (Debian: sudo apt-get install$$need)" >&2; exit 1; fi

# daprd, sentry and consul at their pinned versions: from PATH or the user cache, else built
# once from the Go module proxy (daprd takes 10-25 minutes cold; progress is shown).
deps: build system-deps
	$(BIN) deps

# The Kubernetes control plane the tests apply the generated output to (internal/kubetest):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and kubectl, built once
# into the same cache (about 6 minutes of both cores cold, progress shown).
deps-kubernetes: build
	$(BIN) deps --kubernetes

# The OpenTelemetry Collector the telemetry test exports to (tools/otelcol; about 90 s cold).
deps-otelcol: build
	$(BIN) deps --otelcol

# Redocly's OpenAPI linter for TestOpenAPIPassesRedocly (npm; a few seconds, cached by version).
REDOCLY_VERSION ?= 2.77.0
REDOCLY_DIR ?= $(HOME)/.cache/goplt/redocly-$(REDOCLY_VERSION)
deps-redocly:
	@if [ ! -x "$(REDOCLY_DIR)/node_modules/.bin/redocly" ]; then \
		echo "installing @redocly/cli $(REDOCLY_VERSION) with npm into $(REDOCLY_DIR)"; \
		mkdir -p "$(REDOCLY_DIR)" && npm install --prefix "$(REDOCLY_DIR)" --no-audit --no-fund --loglevel=error "@redocly/cli@$(REDOCLY_VERSION)"; \
	fi

# OCI images of every app and of goplt's daprd, without Docker, into .goplt/images/layout;
# PUSH=<registry> also pushes them and writes .goplt/images/kustomization.yaml (by digest).
images: deps
	$(BIN) images $(if $(PUSH),--push $(PUSH))

run: deps
	$(BIN) run

# The real Dapr CLI for TestDaprCLIRunsThePlatform: GOPLT_DAPR_CLI, else dapr on PATH, else built
# from the shared copy of its source when there is one (the module proxy does not serve it).
DAPR_CLI_BUILD ?= ../shared/tools/dapr-cli/build.sh

test: deps deps-kubernetes deps-otelcol deps-redocly check-generated lint
	@cli="$${GOPLT_DAPR_CLI:-}"; \
	if [ -z "$$cli" ] && ! command -v dapr >/dev/null 2>&1 && [ -x "$(DAPR_CLI_BUILD)" ]; then \
		echo "building the Dapr CLI 1.16.5 with $(DAPR_CLI_BUILD) (about 3 minutes the first time)"; \
		cli=$$($(DAPR_CLI_BUILD)) || exit 1; \
	fi; \
	GOPLT_DAPR_CLI="$$cli" GOPLT_REDOCLY="$(REDOCLY_DIR)/node_modules/.bin/redocly" $(GO) test $(TESTFLAGS) ./...
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZ_LOAD) ./internal/manifest/
	$(GO) test -run '^$$' -fuzz FuzzDifferential -fuzztime $(FUZZ_DIFFERENTIAL) ./apps/authz/engine/

# Every side-by-side benchmark, one after another (about 9 minutes), into docs/benchmarks.md
# and docs/benchmarks.json; each job's whole output and CPU profiles of the gateway under load
# are kept in .goplt/bench. The comparison with Dapr's stock daprd is included when that binary
# is at hand (`bin/goplt deps --stock` builds it once, ~25 min cold). Not part of make test.
bench: deps
	$(GO) run ./tools/bench -stock-daprd "$$($(BIN) deps --check --stock 2>/dev/null | awk '$$1 == "daprd-stock" && $$3 ~ /^\// {print $$3}')"

# The fault suite (docs/chaos.md): every fault under steady load, books checked, a table printed
# (about 8 minutes; bounded at 10). make test runs a short subset of it.
chaos: deps
	GOPLT_CHAOS=full $(GO) test -count=1 -timeout 15m -v -run TestFaults ./tools/chaos

test-short:
	$(GO) test -short -race -count=1 ./...

# gofmt, go vet and staticcheck; make test runs it first.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Compile manifests/ into components/local and deploy/local.
generate: build
	$(BIN) generate

# Fails when a generated file is out of step with manifests/.
check-generated: build
	$(BIN) generate --check

infra-up: deps
	$(BIN) infra up

infra-down: build
	$(BIN) infra down

infra-status: build
	$(BIN) infra status

clean: build
	$(BIN) infra down
	rm -rf bin
