// Command uml_net is the setuid-root helper that creates host tap devices for
// UML kernels and passes their fds back. It deliberately avoids cobra.
package main

import (
	"fmt"
	"os"

	"github.com/umlkit/umlkit/internal/rawcli"
)

const usage = `Usage: uml_net version [tuntap|ethertap|slip] [up|down|add|del] ARGS...
  Setuid helper run by UML kernels (protocol version 4); not meant for direct use.
  --help      show this help
  --version   show the umlkit version
`

func main() {
	if ok, code := rawcli.Common("uml_net", usage, os.Args[1:], os.Stdout); ok {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "uml_net: not built yet in this release (umlkit issue #6)")
	os.Exit(2)
}
