// Command tunctl: create and delete persistent TUN/TAP devices.
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/cli"
)

func main() {
	root := cli.New("tunctl [-b] [-u owner] [-g group] [-t device-name] [-f tun-clone-device]", "create and delete persistent TUN/TAP devices")
	root.RunE = cli.NotBuilt(6)
	os.Exit(cli.Run(root, os.Args[1:]))
}
