package infra

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	consul "github.com/hashicorp/consul/api"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/proc"
)

// service is one server of the stack: how to prepare its data, start it and probe it.
type service struct {
	name    string
	addr    string
	prepare func(ctx context.Context) error
	spec    proc.Spec
	ready   func(ctx context.Context) error
	hint    string // appended to start failures
}

// Database is the PostgreSQL database the apps share, one schema each.
const Database = "goplt"

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func endpoints(cfg Config) Endpoints {
	brokers := make([]string, len(cfg.Ports.Kafka))
	for i, p := range cfg.Ports.Kafka {
		brokers[i] = addr(p)
	}
	return Endpoints{
		PostgresURL:      fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", addr(cfg.Ports.Postgres), Database),
		KafkaBrokers:     brokers,
		ConsulHTTP:       addr(cfg.Ports.ConsulHTTP),
		SentryAddress:    addr(cfg.Ports.SentryGRPC),
		TrustAnchorsFile: filepath.Join(sentryCredentials(cfg.Home), "ca.crt"),
		TrustDomain:      TrustDomain,
		SecretsFile:      SecretsFile(cfg.Home),
		VolumesDir:       VolumesDir(cfg.Home),
	}
}

// VolumesDir holds the apps' declared volumes, $GOPLT_VOLUMES.
func VolumesDir(home string) string { return filepath.Join(home, "data", "volumes") }

// SecretsFile is the file behind the local Dapr secret store.
func SecretsFile(home string) string { return filepath.Join(home, "data", "secrets.json") }

// sentryCredentials is the CA's folder, per trust domain: a CA made for another one is not
// reused.
func sentryCredentials(home string) string { return filepath.Join(home, "data", "sentry-"+TrustDomain) }

func services(cfg Config) ([]service, error) {
	pg, err := postgresService(cfg)
	if err != nil {
		return nil, err
	}
	ep := endpoints(cfg)
	probes := probesFor(State{Endpoints: ep, Ports: cfg.Ports})
	kafkaPorts := make([]string, len(cfg.Ports.Kafka))
	for i, p := range cfg.Ports.Kafka {
		kafkaPorts[i] = strconv.Itoa(p)
	}
	if cfg.Consul == "" || cfg.Sentry == "" || cfg.Self == "" {
		return nil, fmt.Errorf("infra: the consul, sentry and goplt binaries must all be known")
	}
	consulSvc := service{
		name: "consul", addr: ep.ConsulHTTP,
		spec: proc.Spec{Path: cfg.Consul, Args: []string{
			"agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1", "-log-json",
			"-node", "goplt-local",
			"-http-port", strconv.Itoa(cfg.Ports.ConsulHTTP),
			"-dns-port", strconv.Itoa(cfg.Ports.ConsulDNS),
			"-grpc-port", strconv.Itoa(cfg.Ports.ConsulGRPC),
			"-grpc-tls-port", "-1",
			"-serf-lan-port", strconv.Itoa(cfg.Ports.ConsulSerfLAN),
			"-serf-wan-port", strconv.Itoa(cfg.Ports.ConsulSerfWAN),
			"-server-port", strconv.Itoa(cfg.Ports.ConsulServer),
		}},
		ready: probes["consul"],
	}
	sentryCfg := filepath.Join(cfg.Home, "run", "sentry-config.yaml")
	sentrySvc := service{
		name: "sentry", addr: ep.SentryAddress,
		prepare: func(context.Context) error {
			if err := os.MkdirAll(sentryCredentials(cfg.Home), 0o700); err != nil {
				return err
			}
			return os.WriteFile(sentryCfg, []byte(sentryConfiguration), 0o644)
		},
		spec: proc.Spec{Path: cfg.Sentry, Args: []string{
			"--config", sentryCfg,
			"--issuer-credentials", sentryCredentials(cfg.Home),
			"--trust-domain", TrustDomain,
			"--listen-address", "127.0.0.1",
			"--port", strconv.Itoa(cfg.Ports.SentryGRPC),
			"--healthz-listen-address", "127.0.0.1",
			"--healthz-port", strconv.Itoa(cfg.Ports.SentryHealthz),
			"--metrics-listen-address", "127.0.0.1",
			"--metrics-port", strconv.Itoa(cfg.Ports.SentryMetrics),
		}},
		ready: probes["sentry"],
		hint:  "\n  (if the CA in " + sentryCredentials(cfg.Home) + " is damaged, `goplt infra reset` creates a new one)",
	}
	kafkaSvc := service{
		name: "kafka", addr: strings.Join(ep.KafkaBrokers, ","),
		spec: proc.Spec{Path: cfg.Self, Args: []string{
			"infra", "kafka-broker", "--data-dir", filepath.Join(cfg.Home, "data", "kafka"),
			"--ports", strings.Join(kafkaPorts, ","),
			"--secrets-file", SecretsFile(cfg.Home),
		}},
		ready: probes["kafka"],
		hint:  "\n  (if the broker's data in " + filepath.Join(cfg.Home, "data", "kafka") + " is damaged, `goplt infra reset` clears it)",
	}
	return []service{pg, kafkaSvc, consulSvc, sentrySvc}, nil
}

// sentryConfiguration is the control plane's "daprsystem" Configuration: mTLS on.
const sentryConfiguration = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprsystem
spec:
  mtls:
    enabled: true
    workloadCertTTL: 24h
    allowedClockSkew: 15m
`

// probesFor returns a readiness probe per service for the stack described by st.
func probesFor(st State) map[string]func(context.Context) error {
	ep := st.Endpoints
	return map[string]func(context.Context) error{
		"postgres": func(ctx context.Context) error {
			// The admin database answers before "goplt" exists.
			conn, err := pgx.Connect(ctx, strings.Replace(ep.PostgresURL, "/"+Database+"?", "/postgres?", 1))
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			return conn.Ping(ctx)
		},
		"kafka": func(ctx context.Context) error {
			admin, err := ep.KafkaAdmin()
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(append(admin.ClientOpts(), kgo.SeedBrokers(ep.KafkaBrokers...))...)
			if err != nil {
				return err
			}
			defer cl.Close()
			return cl.Ping(ctx)
		},
		"consul": func(ctx context.Context) error {
			c, err := consul.NewClient(&consul.Config{Address: ep.ConsulHTTP})
			if err != nil {
				return err
			}
			leader, err := c.Status().LeaderWithQueryOptions((&consul.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return err
			}
			if leader == "" {
				return fmt.Errorf("no leader elected yet")
			}
			return nil
		},
		"sentry": func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr(st.Ports.SentryHealthz)+"/healthz", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthz answered %s", resp.Status)
			}
			if _, err := os.Stat(ep.TrustAnchorsFile); err != nil {
				return fmt.Errorf("CA certificate not written yet: %w", err)
			}
			return nil
		},
	}
}

// postgresService runs a private cluster in <home>/data/postgres on its own port and socket
// folder. PostgreSQL refuses to run as root, so as root it runs as the "postgres" user.
func postgresService(cfg Config) (service, error) {
	bin := cfg.PostgresBin
	if bin == "" {
		var err error
		if bin, err = PostgresBinDir(); err != nil {
			return service{}, err
		}
	} else if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		return service{}, fmt.Errorf("PostgreSQL server binary not found in %s: install PostgreSQL (Debian: `apt-get install postgresql`) or point to its bin folder", bin)
	}
	dataDir := filepath.Join(cfg.Home, "data", "postgres")
	sockDir := filepath.Join(cfg.Home, "run", "postgres")
	cred, err := postgresCredential()
	if err != nil {
		return service{}, err
	}
	probes := probesFor(State{Endpoints: endpoints(cfg), Ports: cfg.Ports})
	ensureDB := func(ctx context.Context) error {
		if err := probes["postgres"](ctx); err != nil {
			return err
		}
		return createDatabase(ctx, strings.Replace(endpoints(cfg).PostgresURL, "/"+Database+"?", "/postgres?", 1))
	}
	return service{
		name: "postgres", addr: addr(cfg.Ports.Postgres),
		prepare: func(ctx context.Context) error {
			return preparePostgres(ctx, bin, dataDir, sockDir, cred)
		},
		spec: proc.Spec{
			Path: filepath.Join(bin, "postgres"),
			Args: []string{"-D", dataDir, "-p", strconv.Itoa(cfg.Ports.Postgres), "-k", sockDir,
				"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"},
			Credential: cred,
			StopSignal: syscall.SIGINT,
		},
		ready: ensureDB,
		hint:  "\n  (if the data folder " + dataDir + " is damaged, `goplt infra reset` removes it and starts a new cluster)",
	}, nil
}

func createDatabase(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{Database}.Sanitize())
	return err
}

func preparePostgres(ctx context.Context, bin, dataDir, sockDir string, cred *syscall.Credential) error {
	for _, d := range []string{sockDir, filepath.Dir(dataDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if cred != nil {
		if err := os.Chown(sockDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
		// The postgres user must be able to reach its folders through ours.
		for d := filepath.Dir(dataDir); d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 != 0o005 {
				return fmt.Errorf("folder %s is not readable by user postgres (mode %v): PostgreSQL runs as postgres when goplt runs as root; use a home folder it can reach, or `chmod o+rx %s`", d, st.Mode().Perm(), d)
			}
		}
	}
	entries, err := os.ReadDir(dataDir)
	switch {
	case err == nil && len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
			return fmt.Errorf("data folder %s is not empty but holds no PostgreSQL cluster (PG_VERSION is missing): it is damaged or belongs to something else; `goplt infra reset` removes it", dataDir)
		}
		if cred != nil {
			// A data folder copied or restored by root would make postgres refuse to start.
			return chownTree(dataDir, cred)
		}
		return nil
	case err != nil && !os.IsNotExist(err):
		return fmt.Errorf("read data folder %s: %w", dataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", dataDir, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dataDir) // never leave a half-initialised cluster behind
		return fmt.Errorf("initdb %s failed: %w\n%s", dataDir, err, out)
	}
	return nil
}

func chownTree(root string, cred *syscall.Credential) error {
	return filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == cred.Uid {
			return nil
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

// postgresCredential is nil when not root, else the "postgres" user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root: a user named postgres is needed to run it (`apt-get install postgresql` creates one, or `useradd --system postgres`): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// PostgresBinDir finds the folder holding postgres and initdb: PATH first, then Debian's
// /usr/lib/postgresql/<major>/bin (newest major).
func PostgresBinDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir = filepath.Dir(real)
		}
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a > b
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (postgres, initdb) not found on PATH or in /usr/lib/postgresql/*/bin: install them (Debian: `apt-get install postgresql`)")
}

// Reset removes the data of the stack under home (it must not be running).
func Reset(home string) error {
	if st, err := LoadState(home); err == nil {
		for _, s := range st.Services {
			if proc.Alive(s.Pid) {
				return fmt.Errorf("the stack is running (%s pid %d): `goplt infra down` first", s.Name, s.Pid)
			}
		}
	}
	return os.RemoveAll(filepath.Join(home, "data"))
}
