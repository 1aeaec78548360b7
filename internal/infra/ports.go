package infra

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goplt/goplt/internal/ports"
)

// Ports are the loopback ports of the local stack.
type Ports struct {
	Postgres      int   `json:"postgres"`
	Kafka         []int `json:"kafka"` // one per broker
	ConsulHTTP    int   `json:"consulHttp"`
	ConsulDNS     int   `json:"consulDns"`
	ConsulGRPC    int   `json:"consulGrpc"`
	ConsulSerfLAN int   `json:"consulSerfLan"`
	ConsulSerfWAN int   `json:"consulSerfWan"`
	ConsulServer  int   `json:"consulServer"`
	SentryGRPC    int   `json:"sentryGrpc"`
	SentryHealthz int   `json:"sentryHealthz"`
	SentryMetrics int   `json:"sentryMetrics"`
}

// DefaultPorts keeps clear of a system PostgreSQL (5432), Kafka (9092), Consul (8500, 8600,
// 8300-8302) and Dapr's own defaults (50001, 8080, 9090), and stays below the kernel's
// ephemeral range (32768-60999 on Linux) and the app port pool under it (package ports): no
// outbound connection can be holding one of these when the stack starts.
func DefaultPorts() Ports {
	return Ports{
		Postgres:      25432,
		Kafka:         []int{29092, 29093, 29094},
		ConsulHTTP:    28500,
		ConsulDNS:     28600,
		ConsulGRPC:    28502,
		ConsulSerfLAN: 28301,
		ConsulSerfWAN: 28302,
		ConsulServer:  28300,
		SentryGRPC:    25050,
		SentryHealthz: 25051,
		SentryMetrics: 25052,
	}
}

// FreePorts reserves ports from alloc for every service (tests run a stack beside a live one).
// They stay reserved until alloc releases them.
func FreePorts(alloc *ports.Allocator, kafkaBrokers int) (Ports, error) {
	n := 10 + kafkaBrokers
	ps, err := alloc.Take(n)
	if err != nil {
		return Ports{}, err
	}
	return Ports{
		Postgres: ps[0], ConsulHTTP: ps[1], ConsulDNS: ps[2], ConsulGRPC: ps[3],
		ConsulSerfLAN: ps[4], ConsulSerfWAN: ps[5], ConsulServer: ps[6],
		SentryGRPC: ps[7], SentryHealthz: ps[8], SentryMetrics: ps[9],
		Kafka: ps[10:],
	}, nil
}

// portUse names the service each port belongs to, for error messages.
func (p Ports) uses() []portUse {
	u := []portUse{
		{"postgres", p.Postgres}, {"consul http", p.ConsulHTTP}, {"consul dns", p.ConsulDNS},
		{"consul grpc", p.ConsulGRPC}, {"consul serf-lan", p.ConsulSerfLAN},
		{"consul serf-wan", p.ConsulSerfWAN}, {"consul server", p.ConsulServer},
		{"sentry grpc", p.SentryGRPC}, {"sentry healthz", p.SentryHealthz}, {"sentry metrics", p.SentryMetrics},
	}
	for i, k := range p.Kafka {
		u = append(u, portUse{fmt.Sprintf("kafka broker %d", i), k})
	}
	return u
}

type portUse struct {
	what string
	port int
}

// Validate rejects missing and repeated ports.
func (p Ports) Validate() error {
	seen := map[int]string{}
	if len(p.Kafka) == 0 {
		return fmt.Errorf("ports: at least one kafka broker port is needed")
	}
	for _, u := range p.uses() {
		if u.port <= 0 || u.port > 65535 {
			return fmt.Errorf("ports: %s port %d is not in 1-65535", u.what, u.port)
		}
		if other, ok := seen[u.port]; ok {
			return fmt.Errorf("ports: %s and %s both use port %d", other, u.what, u.port)
		}
		seen[u.port] = u.what
	}
	return nil
}

// PortInUseError says which port a service needs is taken, and by whom when that can be known.
type PortInUseError struct {
	Service string
	Port    int
	Owner   string // "pid 123 (postgres)" or ""
}

func (e *PortInUseError) Error() string {
	owner := "another process"
	if e.Owner != "" {
		owner = e.Owner
	}
	return fmt.Sprintf("port %d, needed by %s, is already in use by %s: stop it, or choose other ports (goplt infra up --help)", e.Port, e.Service, owner)
}

// CheckPortFree returns a *PortInUseError when something listens on 127.0.0.1:port.
func CheckPortFree(service string, port int) error {
	if !ports.Free(port) {
		return &PortInUseError{Service: service, Port: port, Owner: PortOwner(port)}
	}
	return nil
}

// PortOwner names the process listening on a TCP port, from /proc ("" when unknown, for
// example when it belongs to another user and we are not root).
func PortOwner(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A = LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			p, err := strconv.ParseInt(fs[1][i+1:], 16, 32)
			if err == nil && int(p) == port {
				inodes[fs[9]] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			pid := strings.Split(fd, "/")[2]
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			return fmt.Sprintf("pid %s (%s)", pid, strings.TrimSpace(string(comm)))
		}
	}
	return ""
}
