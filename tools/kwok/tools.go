//go:build tools

// Package tools pins kwok, which runs fake nodes (and their pods) for the Kubernetes tests.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
