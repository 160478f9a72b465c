// Command uml_mkrootfs: make a root filesystem image for linux.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("uml_mkrootfs [flags] IMAGE", "make a root filesystem image for linux")
	root.RunE = cli.NotBuilt(8)
	os.Exit(cli.Run(root, os.Args[1:]))
}
