// Command blog is the example blog module.
package main

import (
	"github.com/goplt/goplt/apps/blog/blog"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(blog.New()) }
