//go:build linux

package uswitch

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
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

// inlineOK are the options that also take "--name=value" (umlkit's own,
// single-argument ones).
var inlineOK = map[string]bool{
	"-pidfile": true, "-logfile": true,
	"-idle-timeout": true, "-max-conns": true, "-max-conns-per-uid": true,
}

// ParseArgs parses uml_switch's argv left to right like the real binary:
// -unix CTL (with -compat-v0 given earlier, -unix CTL DATA), -hub, -tap DEV,
// -compat-v0, -daemon; and umlkit's additions -pidfile FILE, -logfile FILE,
// the limits -idle-timeout DURATION (0: none), -max-conns N and
// -max-conns-per-uid N (0: none), the VXLAN uplink's -vxlan VNI and
// -vxlan-* options (vxlan_args.go; their mistakes are plain errors, not
// ErrUsage), and the HOWTO's -unix CTL DATA form
// without -compat-v0 (DATA becomes a named data socket). Every option may
// also be written with two dashes, umlkit's own also as --name=value.
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
		// umlkit's own options also take "--name=value".
		inline, hasInline := "", false
		if strings.HasPrefix(a, "--") {
			if k := strings.IndexByte(name, '='); k > 0 {
				name, inline, hasInline = name[:k], name[k+1:], true
			}
		}
		need := func(n int) ([]string, error) {
			if hasInline {
				if n != 1 || !inlineOK[name] {
					return nil, fmt.Errorf("%w: %s does not take =value", ErrUsage, a)
				}
				return []string{inline}, nil
			}
			if i+n >= len(args) {
				return nil, fmt.Errorf("%w: %s needs %d argument(s)", ErrUsage, a, n)
			}
			v := args[i+1 : i+1+n]
			i += n
			return v, nil
		}
		if hasInline && !inlineOK[name] {
			return o, fmt.Errorf("%w: unknown argument %q", ErrUsage, a)
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
		case "-idle-timeout":
			v, err := need(1)
			if err != nil {
				return o, err
			}
			d, err := time.ParseDuration(v[0])
			if v[0] == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 {
				return o, fmt.Errorf("%w: bad -idle-timeout %q", ErrUsage, v[0])
			}
			o.IdleTimeout = d
			if d == 0 {
				o.IdleTimeout = -1 // never
			}
		case "-max-conns":
			v, err := need(1)
			if err != nil {
				return o, err
			}
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 {
				return o, fmt.Errorf("%w: bad -max-conns %q", ErrUsage, v[0])
			}
			o.MaxPorts = n
		case "-max-conns-per-uid":
			v, err := need(1)
			if err != nil {
				return o, err
			}
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 {
				return o, fmt.Errorf("%w: bad -max-conns-per-uid %q", ErrUsage, v[0])
			}
			o.MaxPortsPerUID = n
			if n == 0 {
				o.MaxPortsPerUID = -1 // no limit
			}
		default:
			if n, err := o.vxlanArg(name, a, args[i+1:], inline, hasInline); n >= 0 || err != nil {
				if err != nil {
					return o, err
				}
				i += n
				continue
			}
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
	return o, o.checkVxlan()
}
