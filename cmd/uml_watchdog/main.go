// Command uml_watchdog: UML hang watchdog.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("uml_watchdog [-pid PID | -mconsole PATH]", "UML hang watchdog")
	root.RunE = cli.NotBuilt(5)
	os.Exit(cli.Run(root, os.Args[1:]))
}
