//go:build linux

package moo

import (
	"errors"
	"fmt"

	"github.com/umlkit/umlkit/internal/rawcli"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/ubd"
)

const mkcowUsage = "%[1]s usage: \n\t%[1]s [-f] <COW file> <backing file>\n\t-f forces overwrite of an existing COW file\n"

// Mkcow runs uml_mkcow with argv[0] prog and arguments args; it returns the
// exit status. -f is an option only as the first argument; names beyond the
// second are ignored, as in the real tool.
func Mkcow(prog string, args []string, io Stdio) int {
	if len(args) == 1 {
		if ok, code := rawcli.Common("uml_mkcow", fmt.Sprintf(mkcowUsage, prog), args, io.Stdout); ok {
			return code
		}
	}
	force := len(args) > 0 && args[0] == "-f"
	if force {
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintf(io.Stderr, mkcowUsage, prog)
		return 2
	}
	err := ubd.CreateCOW(args[0], args[1], ubd.CreateOptions{Force: force})
	var ce *ubd.CreateError
	var oe *ubd.OpError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		fmt.Fprintln(io.Stdout, ce.Detail)
		fmt.Fprintf(io.Stderr, "write_cow_header: %s\n", sys.Strerror(ce.Errno))
	case errors.As(err, &oe):
		fmt.Fprintln(io.Stderr, oe)
	default:
		fmt.Fprintf(io.Stderr, "write_cow_header: %s\n", sys.Strerror(err))
	}
	return 1
}
