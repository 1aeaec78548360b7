//go:build tools

// Package tools pins CoreDNS, the cluster DNS of the tests' real node (internal/kubetest).
package tools

import _ "github.com/coredns/coredns"
