// Command port-helper passes its terminal fd back to a UML kernel over a unix
// datagram socket (port and xterm channels), then stays until the session
// ends. Logic: internal/porthelper; spec: shared/spec/channels.md §3–5.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/umlkit/umlkit/internal/porthelper"
	"github.com/umlkit/umlkit/internal/rawcli"
)

const usage = `Usage: port-helper [-uml-socket SOCKET]
  Run by a UML kernel: by in.telnetd (-L) for port channels, the socket then
  being fd 3, or by a terminal emulator for xterm channels. Passes the
  terminal on stdin back to the kernel and stays until the session ends
  (terminal hung up or kernel gone). Other arguments are ignored.
  --help      show this help
  --version   show the umlkit version
`

func main() {
	args := os.Args[1:]
	// Only the long forms: in.telnetd runs the helper as "port-helper -h
	// localhost -p", so -h must not mean help here.
	if len(args) > 0 && (args[0] == "--help" || args[0] == "--version") {
		_, code := rawcli.Common("port-helper", usage, args, os.Stdout)
		os.Exit(code)
	}
	// No signal context: like the real helper, default-disposition signals
	// (the kernel's SIGKILL, SIGTERM, SIGINT) simply end the process.
	err := porthelper.Run(context.Background(), args, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, porthelper.ErrReported):
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "port-helper: %v\n", err)
		os.Exit(1)
	}
}
