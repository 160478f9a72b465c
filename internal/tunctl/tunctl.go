//go:build linux

// Package tunctl is the logic of the tunctl command: create a persistent TAP
// interface owned by a user and/or group, or make one non-persistent again,
// with the real tool's getopt parsing ("bd:f:t:u:g:"), messages, brief mode
// and exit statuses; plus a --json listing of the persistent TAP interfaces
// of the network namespace.
//
// Spec: shared/spec/net.md §5.
package tunctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/buildinfo"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// usage is the real tool's text, argv[0] substituted.
const usage = `Create: %[1]s [-b] [-u owner] [-g group] [-t device-name] [-f tun-clone-device]
Delete: %[1]s -d device-name [-f tun-clone-device]

The default tun clone device is /dev/net/tun - some systems use
/dev/misc/net/tun instead

-b will result in brief output (just the device name)
`

// Extensions (exact words only; the real getopt would reject them).
const extHelp = `
umlkit extensions:
  --json      list the persistent TAP devices of this network namespace as JSON
  --help      show this help
  --version   show the umlkit version
`

// Env is what Run needs from the process; tests fill it in.
type Env struct {
	Argv0          string
	Stdout, Stderr io.Writer
	Euid           int
	// LookupUser / LookupGroup resolve names (default: os/user).
	LookupUser  func(name string) (int, bool)
	LookupGroup func(name string) (int, bool)
}

func (e *Env) lookupUser(name string) (int, bool) {
	if e.LookupUser != nil {
		return e.LookupUser(name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(u.Uid)
	return id, err == nil
}

func (e *Env) lookupGroup(name string) (int, bool) {
	if e.LookupGroup != nil {
		return e.LookupGroup(name)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(g.Gid)
	return id, err == nil
}

// Options is a parsed command line.
type Options struct {
	Brief    bool
	Delete   bool
	Name     string
	Clone    string
	Owner    int
	HasOwner bool
	Group    int
	HasGroup bool
}

// errUsage means: usage was printed, exit 1.
var errUsage = errors.New("usage")

// Run executes tunctl with args (without argv[0]) and returns the exit
// status.
func Run(env Env, args []string) int {
	if len(args) == 1 {
		switch args[0] {
		case "--help":
			fmt.Fprintf(env.Stdout, usage, env.Argv0)
			fmt.Fprint(env.Stdout, extHelp)
			return 0
		case "--version":
			fmt.Fprintln(env.Stdout, buildinfo.Line("tunctl"))
			return 0
		case "--json":
			return listJSON(env)
		}
	}
	opts, err := Parse(&env, args)
	if err != nil {
		fmt.Fprintf(env.Stderr, usage, env.Argv0)
		return 1
	}
	return apply(env, opts)
}

// Parse runs the getopt loop of the real tool ("bd:f:t:u:g:", GNU
// permutation, "--" ends options). Diagnostics go to env.Stderr; the
// caller prints the usage when an error is returned.
func Parse(env *Env, args []string) (Options, error) {
	o := Options{Clone: tuntap.DefaultCloneDevice}
	nonopts := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			nonopts += len(args) - i - 1
			break
		}
		if len(a) < 2 || a[0] != '-' {
			nonopts++
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			switch c {
			case 'b':
				o.Brief = true
				continue
			case 'd', 'f', 't', 'u', 'g':
			default:
				fmt.Fprintf(env.Stderr, "%s: invalid option -- '%c'\n", env.Argv0, c)
				return o, errUsage
			}
			var val string
			switch {
			case j+1 < len(a):
				val = a[j+1:]
			case i+1 < len(args):
				i++
				val = args[i]
			default:
				fmt.Fprintf(env.Stderr, "%s: option requires an argument -- '%c'\n", env.Argv0, c)
				return o, errUsage
			}
			if err := o.set(env, c, val); err != nil {
				return o, err
			}
			break
		}
	}
	if nonopts > 0 {
		return o, errUsage
	}
	return o, nil
}

func (o *Options) set(env *Env, c byte, val string) error {
	switch c {
	case 'd':
		o.Delete, o.Name = true, val
	case 't':
		o.Name = val
	case 'f':
		o.Clone = val
	case 'u':
		id, ok := env.lookupUser(val)
		if !ok {
			if id, ok = strtol(val); !ok {
				fmt.Fprintf(env.Stderr, "'%s' is neither a username nor a numeric uid.\n", val)
				return errUsage
			}
		}
		o.Owner, o.HasOwner = id, true
	case 'g':
		id, ok := env.lookupGroup(val)
		if !ok {
			if id, ok = strtol(val); !ok {
				fmt.Fprintf(env.Stderr, "'%s' is neither a groupname nor a numeric group.\n", val)
				return errUsage
			}
		}
		o.Group, o.HasGroup = id, true
	}
	return nil
}

// strtol mimics `v = strtol(s, &end, 0); ok = *end == '\0'` stored into a
// 32-bit uid_t/gid_t and printed with %d: leading spaces and a sign are
// accepted, the empty string is 0 (end == s points at the NUL), overflow
// saturates.
func strtol(s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	base := uint64(10)
	switch {
	case len(t) >= 3 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && digit(t[2]) >= 0 && digit(t[2]) < 16:
		base, t = 16, t[2:]
	case len(t) > 0 && t[0] == '0':
		base = 8
	}
	if t == "" {
		return 0, false // no digits: end == s
	}
	var v uint64
	over := false
	for i := 0; i < len(t); i++ {
		d := digit(t[i])
		if d < 0 || uint64(d) >= base {
			return 0, false
		}
		if v > (math.MaxInt64-uint64(d))/base {
			over = true
		}
		v = v*base + uint64(d)
	}
	r := int64(v)
	switch {
	case over && neg:
		r = math.MinInt64
	case over:
		r = math.MaxInt64
	case neg:
		r = -r
	}
	return int(int32(r)), true
}

func digit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return -1
}

func apply(env Env, o Options) int {
	name := o.Name
	if len(name) > 15 {
		name = name[:15] // strncpy(ifr_name, name, IFNAMSIZ-1)
	}
	dev, err := tuntap.Open(tuntap.Config{Name: name, CloneDevice: o.Clone})
	if err != nil {
		var pe *os.PathError
		switch {
		case errors.As(err, &pe):
			fmt.Fprintf(env.Stderr, "Failed to open '%s' : %s\n", o.Clone, sys.Strerror(pe.Err))
		case errors.Is(err, tuntap.ErrBadName):
			fmt.Fprintln(env.Stderr, "TUNSETIFF: Invalid argument")
		default:
			fmt.Fprintf(env.Stderr, "TUNSETIFF: %s\n", sys.Strerror(err))
		}
		return 1
	}
	defer dev.Close()
	if o.Delete {
		if err := dev.SetPersist(false); err != nil {
			fmt.Fprintf(env.Stderr, "TUNSETPERSIST: %s\n", sys.Strerror(err))
			return 1
		}
		fmt.Fprintf(env.Stdout, "Set '%s' nonpersistent\n", dev.Name())
		return 0
	}
	if err := dev.SetPersist(true); err != nil {
		fmt.Fprintf(env.Stderr, "TUNSETPERSIST: %s\n", sys.Strerror(err))
		return 1
	}
	if !o.HasOwner && !o.HasGroup {
		o.Owner, o.HasOwner = env.Euid, true
	}
	if o.HasOwner {
		if err := dev.SetOwner(o.Owner); err != nil {
			fmt.Fprintf(env.Stderr, "TUNSETPERSIST: %s\n", sys.Strerror(err))
			return 1
		}
	}
	if o.HasGroup {
		if err := dev.SetGroup(o.Group); err != nil {
			fmt.Fprintf(env.Stderr, "TUNSETPERSIST: %s\n", sys.Strerror(err))
			return 1
		}
	}
	if o.Brief {
		fmt.Fprintln(env.Stdout, dev.Name())
		return 0
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Set '%s' persistent and owned by", dev.Name())
	if o.HasOwner {
		fmt.Fprintf(&b, " uid %d", o.Owner)
	}
	if o.HasGroup {
		fmt.Fprintf(&b, " gid %d", o.Group)
	}
	fmt.Fprintln(env.Stdout, b.String())
	return 0
}

// Listing is one entry of `tunctl --json`.
type Listing = tuntap.Info

func listJSON(env Env) int {
	all, err := tuntap.List()
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", env.Argv0, err)
		return 1
	}
	out := []Listing{}
	for _, in := range all {
		if in.Mode == "tap" && in.Persistent {
			out = append(out, in)
		}
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(env.Stdout, "%s\n", b)
	return 0
}
