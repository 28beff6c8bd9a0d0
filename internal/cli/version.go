package cli

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/buildinfo"
)

func versionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version of this build",
		Long: `Print which build of outgate this is: the version (stamped by make release, or the
module version of go install), the commit and its date, the build date and the Go version.
serve reports the same as the outgate_build_info metric, and the Lambda functions in
their startup log line. --version prints the same text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			i := buildinfo.Get()
			if g.output == "json" {
				return printJSON(cmd, i)
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText(i))
			return err
		},
	}
	return usesOutput(cmd, "text", "json")
}

func versionText(i buildinfo.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "outgate %s\n", i.Version)
	commit := i.Commit
	if i.Modified {
		commit += " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "commit:      %s\n", commit)
	if i.CommitDate != "" {
		fmt.Fprintf(&b, "commit date: %s\n", i.CommitDate)
	}
	if i.BuildDate != "" {
		fmt.Fprintf(&b, "build date:  %s\n", i.BuildDate)
	}
	fmt.Fprintf(&b, "go:          %s %s/%s\n", i.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
