package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goplt/goplt/internal/binaries"
)

// Collector is a real OpenTelemetry Collector (tools/otelcol) receiving OTLP/HTTP on Addr and
// writing every span it gets to File (one OTLP/JSON ExportTraceServiceRequest per line) and
// every metric to MetricsFile (ExportMetricsServiceRequest) and every log record to LogsFile.
type Collector struct {
	Addr        string // host:port of its OTLP/HTTP receiver
	File        string
	MetricsFile string
	LogsFile    string
	cmd         *exec.Cmd
}

// StartCollector builds the collector if needed (progress on stderr), starts it on a port of
// the stack's and waits until it is ready.
func (s *Stack) StartCollector(ctx context.Context) (*Collector, error) {
	bin, err := binaries.Resolver{RepoRoot: s.Root, Progress: os.Stderr}.Ensure(ctx, binaries.OTelCollector())
	if err != nil {
		return nil, err
	}
	ps, err := s.Ports.Take(1)
	if err != nil {
		return nil, err
	}
	c := &Collector{Addr: "127.0.0.1:" + strconv.Itoa(ps[0])}
	dir := filepath.Join(s.Home, "otelcol")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c.File, c.MetricsFile, c.LogsFile = filepath.Join(dir, "spans.json"), filepath.Join(dir, "metrics.json"), filepath.Join(dir, "logs.json")
	config := fmt.Sprintf(`receivers: {otlp: {protocols: {http: {endpoint: %q}}}}
processors: {batch: {timeout: 200ms}}
exporters:
  file: {path: %q, format: json, flush_interval: 100ms}
  file/metrics: {path: %q, format: json, flush_interval: 100ms}
  file/logs: {path: %q, format: json, flush_interval: 100ms}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [file]}
    metrics: {receivers: [otlp], processors: [batch], exporters: [file/metrics]}
    logs: {receivers: [otlp], processors: [batch], exporters: [file/logs]}
`, c.Addr, c.File, c.MetricsFile, c.LogsFile)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "--config=file:"+cfgPath)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Everything is ready") {
				close(ready)
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
	}()
	select {
	case <-ready:
		return c, nil
	case <-time.After(30 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("the collector was not ready within 30 s:\n%s", log.String())
	}
}

// Stop stops the collector (it flushes what it holds first).
func (c *Collector) Stop() {
	_ = c.cmd.Process.Signal(os.Interrupt)
	_ = c.cmd.Wait()
}
