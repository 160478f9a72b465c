// Command uml_net is the setuid-root helper that creates host tap devices for
// UML kernels and passes their fds back (protocol version 4). It avoids
// cobra and every package above the device layer (see deps_test.go).
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/rawcli"
	"github.com/umlkit/umlkit/internal/umlnet"
)

// group may run the helper besides root; override at build time with
// -ldflags "-X main.group=NAME".
var group = umlnet.DefaultGroup

const usage = `Usage: uml_net version [tuntap|ethertap|slip|add|del] ARGS...
  Setuid helper run by UML kernels (protocol version 4); not meant for direct use.
  --help      show this help
  --version   show the umlkit version
`

func main() {
	// A failed re-exec (no /proc in a chroot) leaves the process with the
	// caller's ids only: --help and --version still answer, nothing else.
	reexecErr := umlnet.ReexecClean(os.Args)
	if ok, code := rawcli.Common("uml_net", usage, os.Args[1:], os.Stdout); ok {
		os.Exit(code)
	}
	if reexecErr != nil {
		os.Stderr.WriteString("uml_net : " + reexecErr.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(umlnet.Main(umlnet.Config{Group: group, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:]))
}
