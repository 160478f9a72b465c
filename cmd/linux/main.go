// Command linux is umlkit's User-Mode Linux "kernel": it boots a root
// filesystem with UML's command line (ubd0=… umid=… con0=… eth0=…).
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/childrole"
	_ "github.com/umlkit/umlkit/internal/guestinit" // registers the guest-init role
	"github.com/umlkit/umlkit/internal/kernel"
)

func main() {
	childrole.Dispatch()
	os.Exit(kernel.Main(os.Args[1:], kernel.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
