package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/binaries"
)

// Direction says which way a measure is better.
type Direction int

// Directions.
const (
	Lower Direction = iota
	Higher
)

// Row is one line of a job's table: a measure and, when set, the baseline it is compared with.
// Both name a metric as "<benchmark> <unit>" (the benchmark without its "Benchmark" prefix and
// -GOMAXPROCS suffix), optionally prefixed "<job>:" for another job's results.
type Row struct {
	Label    string
	Value    string
	Baseline string
	Better   Direction
}

// Job is one `go test -bench` invocation and the rows of its table.
type Job struct {
	Name, Title string
	Pkg         string // package to benchmark
	Bench       string // -bench regexp
	Benchtime   string // -benchtime
	Env         []string
	Stack       bool   // starts the real stack (PostgreSQL, broker, Consul, Sentry, sidecars)
	Baseline    string // job whose results rows may refer to, for the header
	Rows        []Row
}

// Result is what a job measured.
type Result struct {
	Job      string             `json:"job"`
	Title    string             `json:"title"`
	Metrics  map[string]float64 `json:"metrics"`
	Seconds  float64            `json:"seconds"`
	Error    string             `json:"error,omitempty"`
	Rendered []RenderedRow      `json:"rows"`
}

// RenderedRow is a row with its numbers.
type RenderedRow struct {
	Label    string   `json:"label"`
	Value    *float64 `json:"value"`
	Baseline *float64 `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
}

// Report is the whole run.
type Report struct {
	Date    string   `json:"date"`
	Machine string   `json:"machine"`
	Go      string   `json:"go"`
	Commit  string   `json:"commit"`
	Dapr    string   `json:"dapr"`
	Results []Result `json:"results"`
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// Parse reads `go test -bench` output into "<benchmark> <unit>" -> value.
func Parse(out []byte) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		g := benchLine.FindStringSubmatch(sc.Text())
		if g == nil {
			continue
		}
		f := strings.Fields(g[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				m[g[1]+" "+f[i+1]] = v
			}
		}
	}
	return m
}

// run runs the jobs (or those named in only), writes the report into outDir and each job's
// whole `go test` output into logDir (the per-process CPU tables and latencies are there).
func run(ctx context.Context, jobs []Job, only []string, outDir, logDir string, progress io.Writer) error {
	if len(only) > 0 {
		jobs = slices.DeleteFunc(slices.Clone(jobs), func(j Job) bool { return !slices.Contains(only, j.Name) })
		if len(jobs) == 0 {
			return fmt.Errorf("no job named %v", only)
		}
	}
	rep := Report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Go: runtime.Version(),
		Commit: gitCommit(), Dapr: binaries.DaprVersion}
	results := map[string]map[string]float64{}
	start := time.Now()
	failed := 0
	for i, j := range jobs {
		what := ""
		if j.Stack {
			what = ", starts the real stack"
		}
		fmt.Fprintf(progress, "bench [%d/%d] %s: %s (%s%s)\n", i+1, len(jobs), j.Name, j.Title, j.Pkg, what)
		t0 := time.Now()
		out, err := runJob(ctx, j, progress)
		if werr := os.WriteFile(filepath.Join(logDir, j.Name+".log"), out, 0o644); werr != nil {
			fmt.Fprintf(progress, "bench: keep the output of %s: %v\n", j.Name, werr)
		}
		res := Result{Job: j.Name, Title: j.Title, Metrics: Parse(out), Seconds: time.Since(t0).Seconds()}
		if err != nil {
			res.Error = err.Error()
			failed++
			fmt.Fprintf(progress, "bench [%d/%d] %s FAILED after %s: %v\n%s\n", i+1, len(jobs), j.Name, time.Since(t0).Round(time.Second), err, tail(out, 15))
		}
		results[j.Name] = res.Metrics
		res.Rendered = render(j, results)
		rep.Results = append(rep.Results, res)
		fmt.Fprintf(progress, "bench [%d/%d] %s done in %s (%s so far)\n", i+1, len(jobs), j.Name, time.Since(t0).Round(time.Second), time.Since(start).Round(time.Second))
	}
	if err := write(outDir, rep); err != nil {
		return err
	}
	fmt.Fprintf(progress, "bench: wrote %s and %s in %s\n", filepath.Join(outDir, "benchmarks.md"), filepath.Join(outDir, "benchmarks.json"), time.Since(start).Round(time.Second))
	if failed > 0 {
		return fmt.Errorf("%d of %d jobs failed (their rows are empty in the report)", failed, len(jobs))
	}
	return nil
}

// runJob runs the job's benchmarks, printing a line every 30 s while they run.
func runJob(ctx context.Context, j Job, progress io.Writer) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", j.Bench, "-benchtime", j.Benchtime,
		"-count", "1", "-timeout", "20m", j.Pkg)
	cmd.Env = append(os.Environ(), j.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t0 := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return out.Bytes(), err
		case <-tick.C:
			fmt.Fprintf(progress, "  %s: %s elapsed\n", j.Name, time.Since(t0).Round(time.Second))
		}
	}
}

// lookup resolves a row's metric reference.
func lookup(ref, job string, results map[string]map[string]float64) *float64 {
	if ref == "" {
		return nil
	}
	if i := strings.Index(ref, ":"); i > 0 && !strings.Contains(ref[:i], " ") {
		job, ref = ref[:i], ref[i+1:]
	}
	v, ok := results[job][ref]
	if !ok {
		return nil
	}
	return &v
}

func render(j Job, results map[string]map[string]float64) []RenderedRow {
	var rows []RenderedRow
	for _, r := range j.Rows {
		rr := RenderedRow{Label: r.Label, Value: scaled(lookup(r.Value, j.Name, results), r.Value, r.Label),
			Baseline: scaled(lookup(r.Baseline, j.Name, results), r.Baseline, r.Label)}
		if rr.Value != nil && rr.Baseline != nil && *rr.Baseline != 0 {
			ratio := *rr.Value / *rr.Baseline
			rr.Ratio = &ratio
		}
		rows = append(rows, rr)
	}
	return rows
}

// scaled shows a ns/op figure in the unit its label names: (ms) or (µs).
func scaled(v *float64, ref, label string) *float64 {
	if v == nil || !strings.HasSuffix(ref, "ns/op") {
		return v
	}
	var x float64
	switch {
	case strings.Contains(label, "(ms)"):
		x = *v / 1e6
	case strings.Contains(label, "(µs)"):
		x = *v / 1e3
	default:
		return v
	}
	return &x
}

func write(dir string, rep Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), Markdown(rep), 0o644)
}

// Markdown renders the report.
func Markdown(rep Report) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (tools/bench); do not edit by hand. Each measure stands beside its\n"+
		"baseline from the same run; the ratio is measure / baseline. Each job's whole output (CPU per\n"+
		"request by process, latencies) is kept in .goplt/bench; what the gateway costs and why:\n"+
		"[gateway-performance.md](gateway-performance.md).\n\n")
	fmt.Fprintf(&b, "- date: %s\n- machine: %s\n- Go: %s, Dapr runtime %s, commit %s\n\n", rep.Date, rep.Machine, rep.Go, rep.Dapr, rep.Commit)
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "## %s\n\n", r.Title)
		if r.Error != "" {
			fmt.Fprintf(&b, "**Failed:** `%s`\n\n", strings.ReplaceAll(r.Error, "`", "'"))
		}
		fmt.Fprintf(&b, "| measure | value | baseline | ratio |\n|---|---|---|---|\n")
		for _, row := range r.Rendered {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.Label, num(row.Value), num(row.Baseline), ratio(row.Ratio))
		}
		fmt.Fprintf(&b, "\n_%s, %.0f s_\n\n", r.Job, r.Seconds)
	}
	return b.Bytes()
}

func num(v *float64) string {
	if v == nil {
		return "—"
	}
	switch a := math.Abs(*v); {
	case a >= 1000:
		return strconv.FormatFloat(math.Round(*v), 'f', -1, 64)
	case a >= 10:
		return strconv.FormatFloat(*v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(*v, 'f', 3, 64)
	}
}

func ratio(v *float64) string {
	if v == nil {
		return "—"
	}
	if *v < 0.1 {
		return fmt.Sprintf("%.4fx", *v)
	}
	return fmt.Sprintf("%.2fx", *v)
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-n):], "\n  ")
}
