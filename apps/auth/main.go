// Command auth is the auth service: logins, access and refresh tokens, sessions and keys.
package main

import (
	"github.com/goplt/goplt/apps/auth/auth"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(auth.New()) }
