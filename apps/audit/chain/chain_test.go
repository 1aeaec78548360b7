package chain

import (
	"bytes"
	"testing"
	"time"
)

func TestSumCoversEveryField(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	base := Entry{Pos: 7, EventID: "e", Topic: "t", Source: "s", Actor: "a", Action: "x", Resource: "r", Outcome: "o", OccurredAt: at, RecordedAt: at, Payload: "{}"}
	h := base.Sum(Genesis)
	for name, f := range map[string]func(e *Entry){
		"pos": func(e *Entry) { e.Pos++ }, "event": func(e *Entry) { e.EventID += "!" }, "topic": func(e *Entry) { e.Topic += "!" },
		"source": func(e *Entry) { e.Source += "!" }, "actor": func(e *Entry) { e.Actor += "!" }, "action": func(e *Entry) { e.Action += "!" },
		"resource": func(e *Entry) { e.Resource += "!" }, "outcome": func(e *Entry) { e.Outcome += "!" },
		"occurred": func(e *Entry) { e.OccurredAt = e.OccurredAt.Add(time.Microsecond) },
		"recorded": func(e *Entry) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"payload":  func(e *Entry) { e.Payload = `{"a":1}` },
		// Moving text between adjacent fields must change the hash too.
		"boundary": func(e *Entry) { e.Actor, e.Action = "ax", "" },
	} {
		e := base
		f(&e)
		if bytes.Equal(e.Sum(Genesis), h) {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	if bytes.Equal(base.Sum([]byte("other previous hash.............")), h) {
		t.Error("the previous hash is not covered")
	}
}
