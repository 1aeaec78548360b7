// Command goplt is the platform's command-line tool. See `goplt --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/goplt/goplt/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
