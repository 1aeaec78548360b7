// Command audit is the audit service: the hash-chained log of every module's events.
package main

import (
	"github.com/goplt/goplt/apps/audit/audit"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(audit.New()) }
