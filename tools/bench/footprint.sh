#!/usr/bin/env bash
# Side-by-side footprint of goplt's daprd and Dapr's stock daprd (-tags allcomponents), in one
# run: the whole platform's memory idle and under gateway load (BenchmarkFootprint, all apps
# and sidecars on the real stack), and one sidecar's start-up time (BenchmarkSidecarStart).
# Builds the stock daprd first if it is missing (about 25 minutes cold on 2 cores).
# Writes the table to stdout and, with -o FILE, to FILE. Run from the repository root:
#   make bench-footprint
set -euo pipefail
out=""
[[ "${1:-}" == "-o" ]] && out="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "footprint: building what is missing (goplt deps --stock)" >&2
bin/goplt deps --stock >&2
stock=$(bin/goplt deps --check --stock | awk '$1 == "daprd-stock" {print $3}')
goplt=$(bin/goplt deps --check | awk '$1 == "daprd" {print $3}')

run() { # name, then env for go test
	local name=$1; shift
	echo "footprint: $name daprd: whole platform (about 2 minutes)" >&2
	env "$@" go test -run '^$' -bench Footprint -benchtime 1x -timeout 20m ./apps/gateway/e2e >"$work/$name.platform"
	echo "footprint: $name daprd: sidecar start-up, 5 starts" >&2
	env "$@" go test -run '^$' -bench SidecarStart -benchtime 5x -timeout 10m ./internal/runner >"$work/$name.start"
}
run goplt
run stock GOPLT_DAPRD="$stock"

# metrics NAME: "metric value" lines from the benchmark lines of both files.
metrics() {
	cat "$work/$1.platform" "$work/$1.start" | awk '/^Benchmark/ {for (i = 5; i < NF; i += 2) print $(i+1), $i}'
}
metrics goplt | sort >"$work/goplt.m"
metrics stock | sort >"$work/stock.m"

{
	echo "| measure | goplt daprd | stock daprd | goplt/stock |"
	echo "|---|---|---|---|"
	join "$work/goplt.m" "$work/stock.m" | awk '{ r = ($3 > 0) ? sprintf("%.2fx", $2 / $3) : "-"; printf "| %s | %.1f | %.1f | %s |\n", $1, $2, $3, r }'
	printf '| binary MiB | %.1f | %.1f | %.2fx |\n' "$(stat -c %s "$goplt" | awk '{print $1/1048576}')" \
		"$(stat -c %s "$stock" | awk '{print $1/1048576}')" \
		"$(echo "$(stat -c %s "$goplt") $(stat -c %s "$stock")" | awk '{print $1/$2}')"
	echo
	echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(go version | awk '{print $3}'), Dapr runtime $(${goplt} --version)."
	grep -h "daprd:" "$work"/*.platform | sed 's/^ *footprint_test.go:[0-9]*: /- /'
} | tee ${out:+"$out"}
