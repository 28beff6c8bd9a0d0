// Command outgate is a static-IP egress gateway for serverless code: an
// authenticated relay and forward proxy with a deny-by-default egress policy.
package main

import (
	"fmt"
	"os"

	"github.com/outgate/outgate/internal/cli"
)

func main() {
	if err := cli.Root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "outgate:", err)
		os.Exit(cli.ExitCode(err))
	}
}
