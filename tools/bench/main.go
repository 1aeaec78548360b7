// Command bench runs every side-by-side benchmark of the platform, one after another, and
// writes one report: docs/benchmarks.md (tables with their baselines and ratios, the machine,
// date and versions) and docs/benchmarks.json. Each figure is measured beside its baseline in
// the same run. Run from the repository root (make bench):
//
//	go run ./tools/bench [-only name,...] [-out docs] [-profiles .goplt/profiles]
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
	profileDir := flag.String("profiles", ".goplt/profiles", "folder for the CPU profiles of the gateway and blog under load (go tool pprof)")
	stock := flag.String("stock-daprd", "", "Dapr's stock daprd, for the footprint comparison (skipped when empty)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	profiles, err := filepath.Abs(*profileDir)
	if err == nil {
		err = os.MkdirAll(profiles, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := run(ctx, Jobs(*stock, profiles), names, *out, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
