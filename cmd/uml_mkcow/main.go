// Command uml_mkcow: create a UML COW file over a backing file.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("uml_mkcow [-f] COW BACKING", "create a UML COW file over a backing file")
	root.RunE = cli.NotBuilt(3)
	os.Exit(cli.Run(root, os.Args[1:]))
}
