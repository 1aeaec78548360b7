package dashboard

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// LogLine is one output line of an app or a sidecar, with what the page filters on.
type LogLine struct {
	Seq      int64
	At       time.Time // when the dashboard got it
	App      string    // app id
	Instance string    // blog#2, or blog#2.dapr for its sidecar
	Level    string    // debug, info, warn, error ("" when the line says none)
	Message  string
	Attrs    string // the rest of a structured line, key=value
	TraceID  string
	SpanID   string
}

// logStore keeps the latest lines of every app and sidecar, oldest dropped first.
type logStore struct {
	mu    sync.Mutex
	lines []LogLine // a ring of max lines
	next  int
	seq   int64
	max   int
}

func newLogStore(max int) *logStore { return &logStore{max: max} }

// Line takes one output line (runner.Options.Lines).
func (s *logStore) Line(app, instance, line string) {
	l := parseLine(line)
	l.App, l.Instance, l.At = app, instance, time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	l.Seq = s.seq
	if len(s.lines) < s.max {
		s.lines = append(s.lines, l)
		return
	}
	s.lines[s.next] = l
	s.next = (s.next + 1) % s.max
}

// logfmtPair is one key=value or key="quoted value" of daprd's text log lines.
var logfmtPair = regexp.MustCompile(`(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)`)

// parseLine reads an app's JSON line (the kernel's slog) or a sidecar's logfmt line (daprd's);
// anything else is kept as its message.
func parseLine(line string) LogLine {
	var l LogLine
	fields := map[string]string{}
	var order []string
	if strings.HasPrefix(line, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			return LogLine{Message: line}
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				b, _ := json.Marshal(v)
				s = string(b)
			}
			fields[k] = s
			order = append(order, k)
		}
	} else {
		for _, p := range logfmtPair.FindAllStringSubmatch(line, -1) {
			v := p[2]
			if strings.HasPrefix(v, `"`) {
				var u string
				if json.Unmarshal([]byte(v), &u) == nil {
					v = u
				}
			}
			fields[p[1]] = v
			order = append(order, p[1])
		}
		if fields["msg"] == "" {
			return LogLine{Message: line}
		}
	}
	l.Level, l.Message = strings.ToLower(fields["level"]), fields["msg"]
	l.TraceID, l.SpanID = fields["trace_id"], fields["span_id"]
	var rest []string
	for _, k := range order {
		switch k {
		case "time", "level", "msg", "app", "trace_id", "span_id", "app_id", "instance", "type", "ver":
			continue
		}
		rest = append(rest, k+"="+fields[k])
	}
	slices.Sort(rest)
	l.Attrs = strings.Join(rest, " ")
	return l
}

// logFilter is what the page's form asks for.
type logFilter struct {
	App, Level, Text, Trace string
}

var levelRank = map[string]int{"debug": 0, "info": 1, "warn": 2, "warning": 2, "error": 3, "fatal": 4}

func (f logFilter) match(l LogLine) bool {
	if f.App != "" && l.App != f.App {
		return false
	}
	if f.Level != "" && levelRank[l.Level] < levelRank[f.Level] {
		return false
	}
	if f.Trace != "" && l.TraceID != f.Trace {
		return false
	}
	if f.Text != "" && !strings.Contains(strings.ToLower(l.Message+" "+l.Attrs), strings.ToLower(f.Text)) {
		return false
	}
	return true
}

// find returns the newest lines that match, newest first, at most limit.
func (s *logStore) find(f logFilter, limit int) []LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LogLine
	n := len(s.lines)
	for i := range n {
		// newest first: the ring's newest is just before next
		l := s.lines[(s.next-1-i+2*n)%n]
		if f.match(l) {
			out = append(out, l)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

// logsPage is the page's data: the filter, the apps to choose from, and the lines.
type logsPage struct {
	Filter logFilter
	Apps   []string
	Lines  []LogLine
}

func (s *Server) logsPage(r *http.Request) (any, error) {
	q := r.URL.Query()
	f := logFilter{App: q.Get("app"), Level: q.Get("level"), Text: q.Get("q"), Trace: q.Get("trace")}
	var apps []string
	for _, m := range s.opts.Set.Modules {
		apps = append(apps, m.Spec.App.ID)
	}
	return logsPage{Filter: f, Apps: slices.Sorted(slices.Values(apps)), Lines: s.logs.find(f, 500)}, nil
}
