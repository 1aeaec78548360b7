package kernel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are the kernel's instruments, beside otelhttp's per-route request duration
// (http.server.request.duration, by http.route and status code).
type metrics struct {
	handled metric.Int64Counter     // events answered, by topic and status (SUCCESS, RETRY, DROP)
	lag     metric.Float64Histogram // from an event's CloudEvent time to its handling
}

func (k *Kernel) initMetrics() {
	m := k.Meter()
	// Instruments with valid names and no options cannot fail; a noop one is the fallback.
	k.metrics.handled, _ = m.Int64Counter("goplt.events.handled",
		metric.WithDescription("Events a subscription answered, by topic and status (SUCCESS, RETRY: redelivered, DROP: dead-lettered)"))
	k.metrics.lag, _ = m.Float64Histogram("goplt.events.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from an event's publication (its CloudEvent time) to its handling"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
}

// Meter returns the app's meter, for a module's own instruments; they appear at the app's
// /metrics and, with an OTLP endpoint, at the collector.
func (k *Kernel) Meter() metric.Meter { return k.tel.Meters.Meter("goplt/" + k.cfg.AppID) }

// countEvent records one event's answer, and how long after its publication it was handled.
func (k *Kernel) countEvent(ctx context.Context, s Subscription, e Event, status string) {
	topic := attribute.String("messaging.destination.name", s.Topic)
	k.metrics.handled.Add(ctx, 1, metric.WithAttributes(topic, attribute.String("status", status)))
	if at, err := time.Parse(time.RFC3339Nano, e.Time); err == nil {
		k.metrics.lag.Record(ctx, time.Since(at).Seconds(), metric.WithAttributes(topic))
	}
}

// observeOutbox reports the outbox's backlog (rows not yet published) and the age of its
// oldest row when metrics are read: a stuck relay shows as a growing age.
func (k *Kernel) observeOutbox() error {
	m := k.Meter()
	backlog, err := m.Int64ObservableGauge("goplt.outbox.backlog", metric.WithDescription("Events in the outbox not yet published"))
	if err != nil {
		return err
	}
	age, err := m.Float64ObservableGauge("goplt.outbox.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest event in the outbox (0 when empty)"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int64
		var oldest float64
		err := k.db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox`).Scan(&n, &oldest)
		if err != nil {
			return err
		}
		o.ObserveInt64(backlog, n)
		o.ObserveFloat64(age, oldest)
		return nil
	}, backlog, age)
	return err
}
