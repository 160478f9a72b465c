// Command uml_switch: virtual switch/hub daemon for UML's daemon transport.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("uml_switch [-hub] [-unix CTL] [-tap DEV] [-daemon]", "virtual switch/hub daemon for UML's daemon transport")
	root.RunE = cli.NotBuilt(4)
	os.Exit(cli.Run(root, os.Args[1:]))
}
