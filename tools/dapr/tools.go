//go:build tools

// Package tools pins the Dapr binaries that goplt builds: daprd and sentry.
package tools

import (
	_ "github.com/dapr/dapr/cmd/daprd"
	_ "github.com/dapr/dapr/cmd/sentry"
)
