package dashboard

import (
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is one span as the dashboard keeps it.
type Span struct {
	TraceID, ID, Parent string
	Service             string // the resource's service.name: the sidecar's app id
	Name                string
	Kind                string
	Start, End          time.Time
	Error               bool
	Attrs               map[string]string
}

// Trace is the spans of one trace, earliest first.
type Trace struct {
	ID    string
	Spans []Span
}

// Start is the earliest span's start; Duration runs to the latest end.
func (t Trace) Start() time.Time { return t.Spans[0].Start }

// Duration of the whole trace.
func (t Trace) Duration() time.Duration {
	end := t.Spans[0].End
	for _, s := range t.Spans {
		if s.End.After(end) {
			end = s.End
		}
	}
	return end.Sub(t.Start())
}

// Services the trace went through, in order of first appearance.
func (t Trace) Services() []string {
	var out []string
	for _, s := range t.Spans {
		if !slices.Contains(out, s.Service) {
			out = append(out, s.Service)
		}
	}
	return out
}

// Root is the name of the first span without a known parent.
func (t Trace) Root() string {
	ids := map[string]bool{}
	for _, s := range t.Spans {
		ids[s.ID] = true
	}
	for _, s := range t.Spans {
		if !ids[s.Parent] {
			return s.Service + ": " + s.Name
		}
	}
	return t.Spans[0].Name
}

// traceStore keeps the spans of the last maxTraces traces.
type traceStore struct {
	mu     sync.Mutex
	traces map[string][]Span
	order  []string // trace ids, oldest first
	max    int
}

func newTraceStore(max int) *traceStore {
	return &traceStore{traces: map[string][]Span{}, max: max}
}

func (s *traceStore) add(spans []Span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range spans {
		if _, ok := s.traces[sp.TraceID]; !ok {
			s.order = append(s.order, sp.TraceID)
			if len(s.order) > s.max {
				delete(s.traces, s.order[0])
				s.order = s.order[1:]
			}
		}
		if len(s.traces[sp.TraceID]) < 500 {
			s.traces[sp.TraceID] = append(s.traces[sp.TraceID], sp)
		}
	}
}

// list returns the traces, newest first.
func (s *traceStore) list() []Trace {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Trace, 0, len(s.order))
	for i := len(s.order) - 1; i >= 0; i-- {
		out = append(out, trace(s.order[i], s.traces[s.order[i]]))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start().After(out[j].Start()) })
	return out
}

func (s *traceStore) get(id string) (Trace, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	spans, ok := s.traces[id]
	if !ok {
		return Trace{}, false
	}
	return trace(id, spans), true
}

func trace(id string, spans []Span) Trace {
	t := Trace{ID: id, Spans: slices.Clone(spans)}
	sort.SliceStable(t.Spans, func(i, j int) bool { return t.Spans[i].Start.Before(t.Spans[j].Start) })
	return t
}

// receiveOTLP is an OTLP/HTTP trace receiver (POST /v1/traces, protobuf or JSON), where the
// sidecars and apps export their spans.
func (s *traceStore) receiveOTLP(w http.ResponseWriter, r *http.Request) {
	var req collectortrace.ExportTraceServiceRequest
	if decodeOTLP(w, r, &req, "trace") {
		s.add(spansOf(&req))
		answerOTLP(w, r, &collectortrace.ExportTraceServiceResponse{})
	}
}

// decodeOTLP reads an OTLP/HTTP export, protobuf or JSON, into req; when it cannot, it has
// answered 400 and returns false.
func decodeOTLP(w http.ResponseWriter, r *http.Request, req proto.Message, signal string) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err == nil {
		if r.Header.Get("Content-Type") == "application/json" {
			err = protojson.Unmarshal(body, req)
		} else {
			err = proto.Unmarshal(body, req)
		}
	}
	if err != nil {
		http.Error(w, "not an OTLP "+signal+" export: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// answerOTLP writes an export's response in the request's encoding.
func answerOTLP(w http.ResponseWriter, r *http.Request, resp proto.Message) {
	var b []byte
	if r.Header.Get("Content-Type") == "application/json" {
		b, _ = protojson.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
	} else {
		b, _ = proto.Marshal(resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	_, _ = w.Write(b)
}

func spansOf(req *collectortrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		service := attr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range sp.GetAttributes() {
					attrs[kv.GetKey()] = value(kv.GetValue())
				}
				out = append(out, Span{
					TraceID: hex.EncodeToString(sp.GetTraceId()), ID: hex.EncodeToString(sp.GetSpanId()),
					Parent: hex.EncodeToString(sp.GetParentSpanId()), Service: service, Name: sp.GetName(),
					Kind:  sp.GetKind().String(),
					Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
					Error: sp.GetStatus().GetCode() == 2, Attrs: attrs,
				})
			}
		}
	}
	return out
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return value(kv.GetValue())
		}
	}
	return ""
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case nil:
		return ""
	default:
		return protojson.Format(v)
	}
}
