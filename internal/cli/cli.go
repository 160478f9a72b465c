// Package cli holds the cobra helpers shared by the mains: legacy single-dash
// argv normalisation (uml_switch -hub, tunctl -u), --version wiring, and the
// mapping of returned errors onto one-line messages and exit codes; gendocs.go
// generates the man pages and shell completions the packages ship.
//
// It is not imported by cmd/uml_net, which keeps a stdlib-only argv parser.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/umlkit/umlkit/internal/buildinfo"
)

// ExitError carries an exit status through the cobra call chain. Msg, when not
// empty, is printed as "<prog>: <msg>" on stderr; an ExitError with no message
// means the command already said what it had to.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an error that makes Run exit with code after printing err (if
// err is not nil).
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// ErrNotBuilt is returned by binaries whose feature has not been built yet.
var ErrNotBuilt = errors.New("not built yet")

// NotBuilt is the RunE of a binary whose feature is not built: one line, exit 2.
func NotBuilt(issue int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		return Exit(2, fmt.Errorf("%w in this release (umlkit issue #%d)", ErrNotBuilt, issue))
	}
}

// New returns a root command with umlkit's conventions: --version prints
// buildinfo.Line, errors and usage are printed by Run rather than by cobra.
func New(use, short string) *cobra.Command {
	name := strings.Fields(use)[0]
	c := &cobra.Command{
		Use:           use,
		Short:         short,
		Version:       buildinfo.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	c.SetVersionTemplate(buildinfo.Line(name) + "\n")
	c.CompletionOptions.HiddenDefaultCmd = true
	return c
}

// NormalizeLegacy rewrites the single-dash long options the real tools accept
// (-hub, -unix, -uml-socket) into the double-dash form pflag understands.
// A word is rewritten only when its name (before any '=') is a long flag of
// fs; words after "--" and plain arguments are left alone.
func NormalizeLegacy(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if f := fs.Lookup(name); f != nil && len(name) > 1 {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// Run executes root with args (os.Args[1:]) under a context cancelled by
// SIGINT/SIGTERM and returns the process exit code. Errors are printed as one
// line "<prog>: <error>" on stderr.
//
// With UMLKIT_GENDOCS=DIR in the environment the command is not executed:
// Run writes its man page and shell completions under DIR instead (see
// GenDocs; used when building the packages).
func Run(root *cobra.Command, args []string) int {
	if dir := os.Getenv(GenDocsEnv); dir != "" {
		return genDocsMain(root, dir, os.Stderr)
	}
	return run(root, args, os.Stderr)
}

func run(root *cobra.Command, args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
	root.SetArgs(NormalizeLegacy(root.Flags(), args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", root.Name(), ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	return 1
}
