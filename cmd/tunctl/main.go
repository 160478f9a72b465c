// Command tunctl creates and deletes persistent TAP devices, a drop-in for
// uml-utilities' tunctl (same getopt flags, messages and exit statuses).
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/umlkit/umlkit/internal/cli"
	"github.com/umlkit/umlkit/internal/tunctl"
)

func main() {
	root := cli.New("tunctl [-b] [-u owner] [-g group] [-t device-name] [-f tun-clone-device]", "create and delete persistent TUN/TAP devices")
	// tunctl's own getopt parser gives the real tool's messages.
	root.DisableFlagParsing = true
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		env := tunctl.Env{Argv0: os.Args[0], Stdout: os.Stdout, Stderr: os.Stderr, Euid: os.Geteuid()}
		// The raw argv: cli.Run's legacy normalisation would turn getopt's
		// "-help" (invalid option 'h') into "--help".
		if code := tunctl.Run(env, os.Args[1:]); code != 0 {
			return cli.Exit(code, nil)
		}
		return nil
	}
	os.Exit(cli.Run(root, os.Args[1:]))
}
