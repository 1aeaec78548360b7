package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/goplt/goplt/internal/telemetry"
)

// A log line made with a request's or an event's context names its trace: the ids of the
// traceparent the sidecar passed; a malformed or absent one adds nothing.
func TestLogLinesCarryTheTrace(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct {
		traceparent, trace, span string
	}{
		{tp, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"}, // not sampled: still one trace
		{"", "", ""},
		{"garbage", "", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", ""}, // upper case is invalid
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", ""},
	} {
		var buf bytes.Buffer
		log := newLogger(&buf, Config{AppID: "demo"})
		log.InfoContext(telemetry.WithTraceParent(context.Background(), c.traceparent), "hello")
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		trace, _ := line["trace_id"].(string)
		span, _ := line["span_id"].(string)
		if trace != c.trace || span != c.span {
			t.Errorf("traceparent %q: trace_id %q span_id %q, want %q %q", c.traceparent, trace, span, c.trace, c.span)
		}
	}
}

// Each event of a delivery, bulk or not, is handled in its publisher's trace.
func TestEventHandlersRunInThePublishersTrace(t *testing.T) {
	k := newKernel(Config{AppID: "demo"}, nil, newLogger(io.Discard, Config{AppID: "demo"}), telemetry.Off())
	const a = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const b = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	var got []string
	s := Subscription{Topic: "t", DeadLetters: true, Handler: func(ctx context.Context, e Event) error {
		got = append(got, telemetry.TraceParent(ctx))
		return nil
	}}
	delivery := telemetry.WithTraceParent(context.Background(), "00-11111111111111111111111111111111-2222222222222222-01")
	k.handle(delivery, s, []Event{{ID: "1", TraceParent: a}, {ID: "2", TraceParent: b}, {ID: "3"}})
	want := []string{a, b, "00-11111111111111111111111111111111-2222222222222222-01"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("handlers ran in traces %v, want %v (an event without one keeps the delivery's)", got, want)
	}
}
