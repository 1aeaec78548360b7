// Package kafkabroker runs a Kafka-protocol broker cluster for local use and tests, on
// franz-go's kfake: fixed loopback ports (one per broker), data kept on disk between runs,
// and, as a production cluster should be, SASL/SCRAM authentication and ACLs: anonymous
// clients are refused, goplt itself is the only superuser, and each app's user may do what
// the generated access list (internal/brokeracl) allows. Production uses a real Kafka
// cluster; the sidecars cannot tell.
package kafkabroker

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Credentials are a SASL/SCRAM-SHA-512 user and password.
type Credentials struct {
	User, Password string
}

// ClientOpts makes a franz-go client authenticate as c.
func (c Credentials) ClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.SASL(scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism())}
}

// Listener says where brokers listen, and how, beyond the loopback defaults.
type Listener struct {
	// Host is the address brokers listen on and advertise; empty means loopback.
	Host string
	// TLS, when set, makes every broker's listener TLS (SASL inside it, as Strimzi's tls
	// listener with SCRAM-SHA-512).
	TLS *tls.Config
}

// Run serves the cluster on loopback until ctx ends, then flushes its data and stops. admin is
// the superuser; topics are created by it (Apply), never automatically.
func Run(ctx context.Context, dataDir string, ports []int, admin Credentials, log *slog.Logger) error {
	return RunOn(ctx, Listener{}, dataDir, ports, admin, log)
}

// RunOn is Run with the listener l.
func RunOn(ctx context.Context, l Listener, dataDir string, ports []int, admin Credentials, log *slog.Logger) error {
	if len(ports) == 0 {
		return fmt.Errorf("kafka broker: no ports given")
	}
	if admin.User == "" || admin.Password == "" {
		return fmt.Errorf("kafka broker: no superuser credentials")
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("kafka broker: data folder: %w", err)
	}
	opts := []kfake.Opt{}
	if l.Host != "" {
		opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(l.Host, port))
		}))
	}
	if l.TLS != nil {
		opts = append(opts, kfake.TLS(l.TLS))
	}
	c, err := kfake.NewCluster(append(opts,
		kfake.NumBrokers(len(ports)),
		kfake.Ports(ports...),
		kfake.DefaultNumPartitions(1),
		kfake.DataDir(dataDir),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", admin.User, admin.Password),
		kfake.EnableACLs(),
	)...)
	if err != nil {
		return fmt.Errorf("kafka broker: start on ports %v with data in %s: %w", ports, dataDir, err)
	}
	log.Info("kafka broker ready", "brokers", c.ListenAddrs(), "dataDir", dataDir, "auth", "SCRAM-SHA-512", "acls", true)
	<-ctx.Done()
	c.Close()
	log.Info("kafka broker stopped")
	return nil
}
