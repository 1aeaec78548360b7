//go:build tools

// Package tools pins the Dapr binaries that goplt builds: daprd, sentry, and the operator
// the tests' real node runs.
package tools

import (
	_ "github.com/dapr/dapr/cmd/daprd"
	_ "github.com/dapr/dapr/cmd/operator"
	_ "github.com/dapr/dapr/cmd/sentry"
)
