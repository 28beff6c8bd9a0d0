package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// env is what the commands take from their process beyond flags; tests
// replace it.
type env struct {
	// interactive reports whether someone can answer a question: stdin is
	// a terminal.
	interactive func() bool
}

func processEnv() env {
	return env{interactive: func() bool { return isTerminal(os.Stdin) }}
}

// isTerminal reports whether f is a terminal someone can type at.
func isTerminal(f *os.File) bool { return terminal(f.Fd()) }

// confirm asks on w and reads one answer from r: only "y" or "yes" go ahead.
func confirm(r io.Reader, w io.Writer) bool {
	fmt.Fprint(w, "Go ahead? [y/N] ")
	var answer string
	fmt.Fscanln(r, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

// yesFlag is the one spelling of --yes on every destructive command.
func yesFlag(cmd *cobra.Command, yes *bool) {
	cmd.Flags().BoolVar(yes, "yes", false, "go ahead without asking (needed when stdin is not a terminal)")
}

// mayAct is the gate of a destructive command: --yes goes ahead; on a
// terminal the user is asked; in a script without --yes nothing is done and
// the command exits 2 saying why, so a pipeline never destroys by default.
func (g *globals) mayAct(cmd *cobra.Command, yes bool, what string) error {
	if yes {
		return nil
	}
	if !g.env.interactive() {
		return usageError{fmt.Errorf("%s: stdin is not a terminal, so nobody can confirm; nothing was changed. Pass --yes to go ahead", what)}
	}
	fmt.Fprintln(cmd.ErrOrStderr(), what+".")
	if !confirm(cmd.InOrStdin(), cmd.ErrOrStderr()) {
		return errors.New("not confirmed; nothing was changed")
	}
	return nil
}
