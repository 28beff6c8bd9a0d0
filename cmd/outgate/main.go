// Command outgate is a static-IP egress gateway for serverless code: an
// authenticated relay and forward proxy with a deny-by-default egress policy.
package main

import (
	"os"

	"github.com/outgate/outgate/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
