// Package rawcli is the stdlib-only argv front end for the binaries that must
// not pull in cobra: the setuid helper uml_net and port-helper. It answers
// --help and --version and reports unbuilt features in one line.
package rawcli

import (
	"fmt"
	"io"

	"github.com/umlkit/umlkit/internal/buildinfo"
)

// Common handles --help and --version as the first argument. It returns
// handled=true and the exit code when it answered.
func Common(prog, usage string, args []string, stdout io.Writer) (handled bool, code int) {
	if len(args) == 0 {
		return false, 0
	}
	switch args[0] {
	case "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return true, 0
	case "--version", "-version":
		fmt.Fprintln(stdout, buildinfo.Line(prog))
		return true, 0
	}
	return false, 0
}
