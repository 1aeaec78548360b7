// Command billing is the example billing module.
package main

import (
	"github.com/goplt/goplt/apps/billing/billing"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(billing.New()) }
