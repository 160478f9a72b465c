// Command linux is umlkit's User-Mode Linux "kernel": it boots a root
// filesystem with UML's command line (ubd0=… umid=… con0=… eth0=…).
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/linux"
)

func main() {
	os.Exit(linux.Main(os.Args[1:], linux.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
