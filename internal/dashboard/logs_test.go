package dashboard

import (
	"fmt"
	"testing"
)

// An app's JSON line and a sidecar's logfmt line become level, message, attributes and trace;
// anything else is kept whole.
func TestParseLine(t *testing.T) {
	for line, want := range map[string]LogLine{
		`{"time":"2026-12-04T02:00:30Z","level":"DEBUG","msg":"request","app":"billing","trace_id":"4bf9","span_id":"00f0","path":"/x","status":200}`: {
			Level: "debug", Message: "request", Attrs: "path=/x status=200", TraceID: "4bf9", SpanID: "00f0"},
		`time="2026-12-04T02:00:22Z" level=warning msg="App health probes stopping" app_id=audit instance=vm scope=dapr.apphealth type=log ver=unknown`: {
			Level: "warning", Message: "App health probes stopping", Attrs: "scope=dapr.apphealth"},
		`You're up and running! Dapr logs will appear here.`: {Message: `You're up and running! Dapr logs will appear here.`},
	} {
		if got := parseLine(line); got != want {
			t.Errorf("parseLine(%s)\n= %+v\nwant %+v", line, got, want)
		}
	}
}

// The store keeps the latest lines, newest first, and filters by app, level, text and trace.
func TestLogStoreFilters(t *testing.T) {
	s := newLogStore(3)
	for i := range 5 {
		s.Line("blog", "blog#1", fmt.Sprintf(`{"level":"INFO","msg":"line %d","trace_id":"t%d"}`, i, i%2))
	}
	s.Line("billing", "billing", `{"level":"WARN","msg":"slow"}`)
	all := s.find(logFilter{}, 10)
	if len(all) != 3 || all[0].Message != "slow" || all[2].Message != "line 3" {
		t.Fatalf("kept %+v, want the 3 newest, newest first", all)
	}
	if got := s.find(logFilter{Level: "warn"}, 10); len(got) != 1 || got[0].App != "billing" {
		t.Errorf("warn and above: %+v", got)
	}
	if got := s.find(logFilter{App: "blog", Trace: "t0"}, 10); len(got) != 1 || got[0].Message != "line 4" {
		t.Errorf("blog in trace t0: %+v", got)
	}
	if got := s.find(logFilter{Text: "LINE 3"}, 10); len(got) != 1 {
		t.Errorf("text: %+v", got)
	}
}
