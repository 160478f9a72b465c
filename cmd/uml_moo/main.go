// Command uml_moo: merge a UML COW file into its backing file.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("uml_moo [-b BACKING] [-d] COW [NEW]", "merge a UML COW file into its backing file")
	root.RunE = cli.NotBuilt(3)
	os.Exit(cli.Run(root, os.Args[1:]))
}
