// Command notes is the sample app: the smallest module that uses every link of the platform.
package main

import (
	"github.com/goplt/goplt/apps/notes/notes"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(notes.New()) }
