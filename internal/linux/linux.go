// Package linux is the entry point of the `linux` binary. The program is
// three processes, each in its own package:
//
//	host   P: the process the user starts; parses the command line, owns
//	       the host side of every device and the mconsole, starts K
//	kside  K: fresh user/mount/net/uts/ipc/cgroup namespaces; serves the
//	       devices to the guest and starts G
//	guest  G: becomes PID 1 of the guest's pid namespace, execs its init
//
// plan is the contract between them. This package registers the child
// roles of K and G (host registers its own) and runs P.
package linux

import (
	"github.com/umlkit/umlkit/internal/childrole"
	_ "github.com/umlkit/umlkit/internal/linux/guest" // registers G's role
	"github.com/umlkit/umlkit/internal/linux/host"
	_ "github.com/umlkit/umlkit/internal/linux/kside" // registers K's roles
)

// Stdio are the host streams of the process.
type Stdio = host.Stdio

// Main runs a child role if this process is one (it then exits), else
// `linux` with argv[1:], and returns the exit status.
func Main(args []string, stdio Stdio) int {
	childrole.Dispatch()
	return host.Main(args, stdio)
}
