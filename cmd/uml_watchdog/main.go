// Command uml_watchdog is the host half of a UML guest's /dev/watchdog
// (started by the kernel as "uml_watchdog -pid PID" or "-mconsole SOCKET").
// Behaviour: shared/spec/misc-tools.md §1; implementation: internal/watchdog.
//
// Bad arguments exit 1 silently, as the real helper does; --help and
// --version (alone) are answered. UMLKIT_WATCHDOG_TIMEOUT (a Go duration)
// shortens the 60 s hang timeout for tests.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/umlkit/umlkit/internal/rawcli"
	"github.com/umlkit/umlkit/internal/watchdog"
)

const usage = `Usage: uml_watchdog -pid PID
       uml_watchdog -mconsole SOCKET

Host helper for a User-Mode Linux guest's /dev/watchdog, started by the kernel.
Writes one byte when ready, then expects a byte on stdin at least every 60 s.
On silence: -pid sends SIGINT, SIGINT, SIGKILL to the UML process; -mconsole
sends a HANG notification to the mconsole notify socket. Exits 0 at EOF.
`

func main() {
	args := os.Args[1:]
	if len(args) == 1 {
		if handled, code := rawcli.Common("uml_watchdog", usage, args, os.Stdout); handled {
			os.Exit(code)
		}
	}
	cfg, err := watchdog.ParseArgs(args)
	if err != nil {
		os.Exit(1)
	}
	if v := os.Getenv("UMLKIT_WATCHDOG_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "uml_watchdog: bad UMLKIT_WATCHDOG_TIMEOUT %q\n", v)
			os.Exit(1)
		}
		cfg.Timeout = d
	}
	os.Exit(watchdog.Run(cfg, os.Stdin, os.Stdout, os.Stderr))
}
