// Command linux: User-Mode Linux: boot a root filesystem with UML's command line.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("linux [UML options and kernel parameters]", "User-Mode Linux: boot a root filesystem with UML's command line")
	root.RunE = cli.NotBuilt(8)
	os.Exit(cli.Run(root, os.Args[1:]))
}
