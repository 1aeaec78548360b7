package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkDecide/engine/policies=10-2         	 5000000	       235.0 ns/op
BenchmarkDecide/ladon/policies=10-2          	 1000000	      1100 ns/op
BenchmarkPaths-2   	       1	63000000000 ns/op	      1513 gateway-req/s	      1675 sidecars-req/s	 0.39 gateway-added-p50-ms@200
PASS
`

func TestParse(t *testing.T) {
	m := Parse([]byte(sample))
	want := map[string]float64{
		"Decide/engine/policies=10 ns/op": 235,
		"Decide/ladon/policies=10 ns/op":  1100,
		"Paths gateway-req/s":             1513,
		"Paths sidecars-req/s":            1675,
		"Paths gateway-added-p50-ms@200":  0.39,
		"Paths ns/op":                     63e9,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("parsed %d metrics, want %d: %v", len(m), len(want), m)
	}
}

func TestRenderRatiosAndCrossJobReferences(t *testing.T) {
	results := map[string]map[string]float64{
		"a": {"X ns/op": 2e6, "Y ns/op": 4e6},
		"b": {"X ns/op": 8e6},
	}
	rows := render(Job{Name: "b", Rows: []Row{
		{Label: "a's X vs b's X (ms)", Value: "a:X ns/op", Baseline: "X ns/op"},
		{Label: "missing", Value: "Z ns/op"},
	}}, results)
	if *rows[0].Value != 2 || *rows[0].Baseline != 8 || *rows[0].Ratio != 0.25 {
		t.Errorf("row 0: value %v baseline %v ratio %v", *rows[0].Value, *rows[0].Baseline, *rows[0].Ratio)
	}
	if rows[1].Value != nil || rows[1].Ratio != nil {
		t.Errorf("a missing metric rendered a value")
	}
	md := string(Markdown(Report{Results: []Result{{Job: "b", Title: "B", Rendered: rows}}}))
	if !strings.Contains(md, "| missing | — | — | — |") {
		t.Errorf("markdown:\n%s", md)
	}
}

// The harness end to end on a real, fast benchmark: it runs go test, parses what it prints and
// writes both reports.
func TestHarnessSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on internal/token")
	}
	dir := t.TempDir()
	job := Job{Name: "token", Title: "tokens", Pkg: "github.com/goplt/goplt/internal/token", Bench: "^BenchmarkSign$|^BenchmarkVerify$", Benchtime: "20x",
		Rows: []Row{{Label: "verify vs sign", Value: "Verify ns/op", Baseline: "Sign ns/op"}}}
	if err := run(context.Background(), []Job{job}, nil, dir, dir, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0].Rendered[0]
	if r.Value == nil || r.Baseline == nil || r.Ratio == nil || *r.Value <= 0 {
		t.Fatalf("no figures measured: %+v\n%v", r, rep.Results[0].Metrics)
	}
	md, err := os.ReadFile(filepath.Join(dir, "benchmarks.md"))
	if err != nil || !strings.Contains(string(md), "| verify vs sign |") {
		t.Fatalf("markdown report: %v\n%s", err, md)
	}
	if log, err := os.ReadFile(filepath.Join(dir, "token.log")); err != nil || !strings.Contains(string(log), "BenchmarkVerify") {
		t.Fatalf("the job's output was not kept: %v\n%s", err, log)
	}
}
