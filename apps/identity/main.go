// Command identity is the identity service: users, credentials and roles.
package main

import (
	"github.com/goplt/goplt/apps/identity/identity"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(identity.New()) }
