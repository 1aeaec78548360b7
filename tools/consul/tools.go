//go:build tools

// Package tools pins the consul agent that goplt builds.
package tools

import _ "github.com/hashicorp/consul"
