//go:build linux

package uswitch

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Default socket paths of the real binary (upstream defaults; Debian's init
// script passes -unix DebianCtlPath).
const (
	DefaultCtlPath  = "/tmp/uml.ctl"
	DefaultDataPath = "/tmp/uml.data"
	DebianCtlPath   = "/var/run/uml-utilities/uml_switch.ctl"
)

// ErrUsage is returned by ParseArgs for an unknown word or a missing
// argument; the caller prints Usage on stderr and exits 1.
var ErrUsage = errors.New("usage")

// Usage returns the real uml_switch's usage text for argv0.
func Usage(argv0 string) string {
	return "Usage : " + argv0 + " [ -unix control-socket ] [ -hub ] [ -tap tap-device ]\n" +
		"or : " + argv0 + " -compat-v0 [ -unix control-socket data-socket ] [ -hub ] [ -tap tap-device ]\n"
}

// Options are the command-line settings (see ParseArgs).
type Options struct {
	Config
	Daemon  bool
	PIDFile string
	LogFile string
	Help    bool // --help
	Version bool // --version
}

// ParseArgs parses uml_switch's argv left to right like the real binary:
// -unix CTL (with -compat-v0 given earlier, -unix CTL DATA), -hub, -tap DEV,
// -compat-v0, -daemon; and umlkit's additions -pidfile FILE, -logfile FILE
// and the HOWTO's -unix CTL DATA form without -compat-v0 (DATA becomes a
// named data socket). Every option may also be written with two dashes.
// -hub and -compat-v0 print their notices on stdout as they are met, as the
// real one does.
func ParseArgs(argv0 string, args []string, stdout io.Writer) (Options, error) {
	o := Options{Config: Config{CtlPath: DefaultCtlPath, Prog: argv0}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := a
		if strings.HasPrefix(a, "--") && len(a) > 2 {
			name = a[1:]
		}
		need := func(n int) ([]string, error) {
			if i+n >= len(args) {
				return nil, fmt.Errorf("%w: %s needs %d argument(s)", ErrUsage, a, n)
			}
			v := args[i+1 : i+1+n]
			i += n
			return v, nil
		}
		switch name {
		case "-unix":
			n := 1
			if o.CompatV0 {
				n = 2
			}
			v, err := need(n)
			if err != nil {
				return o, err
			}
			o.CtlPath = v[0]
			if n == 2 {
				o.DataPath = v[1]
			} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				// The HOWTO's "-unix CTL DATA" (the real binary rejects it
				// without -compat-v0): bind a named data socket there.
				i++
				o.DataPath = args[i]
			}
		case "-hub":
			fmt.Fprintf(stdout, "%s will be a hub instead of a switch\n", argv0)
			o.Hub = true
		case "-compat-v0":
			fmt.Fprintf(stdout, "Control protocol 0 compatibility\n")
			o.CompatV0 = true
			if o.DataPath == "" {
				o.DataPath = DefaultDataPath
			}
		case "-tap":
			v, err := need(1)
			if err != nil {
				return o, err
			}
			o.Tap = v[0]
		case "-daemon":
			o.Daemon = true
		case "-pidfile":
			v, err := need(1)
			if err != nil {
				return o, err
			}
			o.PIDFile = v[0]
		case "-logfile":
			v, err := need(1)
			if err != nil {
				return o, err
			}
			o.LogFile = v[0]
		default:
			switch a {
			case "--help":
				o.Help = true
				continue
			case "--version":
				o.Version = true
				continue
			}
			return o, fmt.Errorf("%w: unknown argument %q", ErrUsage, a)
		}
	}
	return o, nil
}
