// Command port-helper passes its terminal fd back to a UML kernel over a unix
// datagram socket (port and xterm channels).
package main

import (
	"fmt"
	"os"

	"github.com/umlkit/umlkit/internal/rawcli"
)

const usage = `Usage: port-helper -uml-socket SOCKET
  Passes the terminal on stdin back to the UML kernel listening on SOCKET.
  --help      show this help
  --version   show the umlkit version
`

func main() {
	if ok, code := rawcli.Common("port-helper", usage, os.Args[1:], os.Stdout); ok {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "port-helper: not built yet in this release (umlkit issue #7)")
	os.Exit(2)
}
