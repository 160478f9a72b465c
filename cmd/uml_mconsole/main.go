// Command uml_mconsole is the UML management console client: it sends one
// command (or an interactive session of them) to a UML instance's mconsole
// socket and prints the replies exactly as Debian's uml_mconsole does.
// Behaviour: shared/spec/mconsole.md §6; implementation: internal/mconsole/mcclient.
//
// It parses argv by hand (no cobra) and installs no signal handlers (the
// real client dies on SIGINT/SIGTERM too) to keep one-shot start-up cheap.
package main

import (
	"context"
	"os"

	"github.com/umlkit/umlkit/internal/mconsole/mcclient"
)

func main() {
	stdio := mcclient.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(mcclient.Run(context.Background(), os.Args[1:], stdio, os.Getenv))
}
