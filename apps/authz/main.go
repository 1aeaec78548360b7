// Command authz is the authorization service: ladon policy decisions and the policy admin API.
package main

import (
	"github.com/goplt/goplt/apps/authz/authz"
	"github.com/goplt/goplt/internal/kernel"
)

func main() { kernel.Main(authz.New()) }
