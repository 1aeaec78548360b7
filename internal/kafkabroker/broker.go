// Package kafkabroker runs a Kafka-protocol broker cluster for local use and tests, on
// franz-go's kfake: fixed loopback ports (one per broker), automatic topic creation and data
// kept on disk between runs. Production uses a real Kafka cluster; the sidecars cannot tell.
package kafkabroker

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Run serves the cluster until ctx ends, then flushes its data and stops.
func Run(ctx context.Context, dataDir string, ports []int, log *slog.Logger) error {
	if len(ports) == 0 {
		return fmt.Errorf("kafka broker: no ports given")
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("kafka broker: data folder: %w", err)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(len(ports)),
		kfake.Ports(ports...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
		kfake.DataDir(dataDir),
	)
	if err != nil {
		return fmt.Errorf("kafka broker: start on ports %v with data in %s: %w", ports, dataDir, err)
	}
	log.Info("kafka broker ready", "brokers", c.ListenAddrs(), "dataDir", dataDir)
	<-ctx.Done()
	c.Close()
	log.Info("kafka broker stopped")
	return nil
}
