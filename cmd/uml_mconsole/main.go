// Command uml_mconsole: UML management console client.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("uml_mconsole UMID|PATH [command...]", "UML management console client")
	root.RunE = cli.NotBuilt(5)
	os.Exit(cli.Run(root, os.Args[1:]))
}
