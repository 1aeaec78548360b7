// Command bench runs every side-by-side benchmark of the platform, one after another, and
// writes one report: docs/benchmarks.md (tables with their baselines and ratios, the machine,
// date and versions) and docs/benchmarks.json. Each figure is measured beside its baseline in
// the same run. Run from the repository root (make bench):
//
//	go run ./tools/bench [-only name,...] [-out docs] [-work .goplt/bench]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
)

func main() {
	only := flag.String("only", "", "run only these jobs (comma-separated names; default all)")
	out := flag.String("out", "docs", "folder for benchmarks.md and benchmarks.json")
	work := flag.String("work", ".goplt/bench", "folder for each job's whole output (<job>.log) and the CPU profiles of the gateway and blog under load (profiles/, for go tool pprof)")
	stock := flag.String("stock-daprd", "", "Dapr's stock daprd, for the footprint comparison (skipped when empty)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	logs, err := filepath.Abs(*work)
	profiles := filepath.Join(logs, "profiles")
	if err == nil {
		err = os.MkdirAll(profiles, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := run(ctx, Jobs(*stock, profiles), names, *out, logs, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
