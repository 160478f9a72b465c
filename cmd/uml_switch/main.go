// Command uml_switch: virtual switch/hub daemon for UML's daemon transport.
//
// The argv is the real one's (single-dash words parsed left to right, see
// uswitch.ParseArgs), so cobra's flag parsing is off; --help and --version
// are still answered.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/umlkit/umlkit/internal/cli"
	"github.com/umlkit/umlkit/internal/uswitch"
)

func main() {
	root := cli.New("uml_switch [ -unix control-socket ] [ -hub ] [ -tap tap-device ]",
		"virtual switch/hub daemon for UML's daemon transport")
	root.Long = "uml_switch connects UML guests (eth0=daemon,<mac>,unix,<control-socket>) and optionally a host tap\n" +
		"device.\n\n" + uswitch.Usage("uml_switch") + "\nAlso: -daemon, and the options below (one or two dashes). Default control socket " +
		uswitch.DefaultCtlPath + " (Debian's service uses " + uswitch.DebianCtlPath + ").\n" +
		"SIGINT/SIGTERM remove the sockets and exit; SIGUSR1 logs per-port counters."
	root.DisableFlagParsing = true
	// Documentation only (--help, man page, completions): uswitch.ParseArgs
	// parses every word, these included, in the real one's left-to-right way.
	f := root.Flags()
	f.Duration("idle-timeout", uswitch.DefaultIdleTimeout, "close a control connection that sends no request within this time (0: never)")
	f.Int("max-conns", uswitch.DefaultMaxPorts, "most control connections in all")
	f.Int("max-conns-per-uid", uswitch.DefaultMaxPortsPerUID, "most control connections of one user; root is not limited (0: no limit)")
	f.String("pidfile", "", "write the pid to `FILE` and remove it at exit")
	f.String("logfile", "", "append the log lines to `FILE`")
	f.Uint32("vxlan", 0, "add a VXLAN uplink for network identifier `VNI` (see docs/uml_switch.md)")
	f.StringArray("vxlan-peer", nil, "VXLAN: a remote endpoint `ADDR[:PORT]` that gets broadcasts and unknown unicast (repeatable; IPv6 as [ADDR]:PORT)")
	f.String("vxlan-group", "", "VXLAN: a multicast group `ADDR` to join and flood to")
	f.String("vxlan-local", "", "VXLAN: the local address `ADDR` to send from and listen on (default: any)")
	f.Uint16("vxlan-port", 4789, "VXLAN: the UDP `PORT` to listen on and send to")
	f.String("vxlan-dev", "", "VXLAN: the interface `IFNAME` of -vxlan-group")
	f.Int("vxlan-ttl", 0, "VXLAN: the outer `TTL` (default 1 for multicast, the system's for unicast)")
	f.Bool("vxlan-learn-port", false, "VXLAN: learn remotes at their source port too (VDE's vxvde)")
	root.RunE = run
	os.Exit(cli.Run(root, os.Args[1:]))
}

func run(cmd *cobra.Command, args []string) error {
	argv0 := os.Args[0]
	o, err := uswitch.ParseArgs(argv0, args, os.Stdout)
	if errors.Is(err, uswitch.ErrUsage) {
		fmt.Fprint(os.Stderr, uswitch.Usage(argv0))
		return cli.Exit(1, nil)
	}
	if err != nil {
		return cli.Exit(1, err)
	}
	switch {
	case o.Help:
		return cmd.Help()
	case o.Version:
		fmt.Println(uswitch.VersionLine())
		return nil
	}
	err = uswitch.Command(cmd.Context(), o, uswitch.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	var se *uswitch.SignalError
	var re *uswitch.ReportedError
	switch {
	case errors.As(err, &se):
		// Die by the signal, like the real one.
		signal.Reset(se.Signal)
		syscall.Kill(os.Getpid(), se.Signal)
		time.Sleep(time.Second)
		return cli.Exit(128+int(se.Signal), nil)
	case errors.As(err, &re):
		return cli.Exit(1, nil)
	case err != nil:
		return cli.Exit(1, err)
	}
	return nil
}
