// Package chanspec parses UML console and serial line channel specs
// ("fd:0,fd:1", "pts", "port:9000", "tty:/dev/pts/7", "xterm", "null",
// "none") into a Pair, with the kernel's own error strings.
//
// Grammar (shared/spec/channels.md §2): "IN,OUT" split at the first comma,
// each side parsed on its own, or a single channel used for both
// directions. The type is matched by prefix, in the order fd, null, port,
// pty, pts, tty, xterm, and the text after the type is the type's argument
// (so "nullx" is null and "xtermfoo" is xterm). "none" is accepted only as
// the whole spec and means the guest device does not exist.
//
// The package is pure: no I/O.
package chanspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is a channel type.
type Kind int

// Channel types, in the order the kernel matches their prefixes.
const (
	FD Kind = iota + 1
	Null
	Port
	Pty
	Pts
	Tty
	Xterm
)

var kindNames = []struct {
	name string
	kind Kind
}{{"fd", FD}, {"null", Null}, {"port", Port}, {"pty", Pty}, {"pts", Pts}, {"tty", Tty}, {"xterm", Xterm}}

func (k Kind) String() string {
	for _, n := range kindNames {
		if n.kind == k {
			return n.name
		}
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Chan is one parsed channel.
type Chan struct {
	Kind Kind
	FD   int    // FD: the host file descriptor
	Port int    // Port: the TCP port
	Dev  string // Tty: the host device
}

// String is the channel in spec form ("fd:3", "port:9000", "pts").
func (c Chan) String() string {
	switch c.Kind {
	case FD:
		return "fd:" + strconv.Itoa(c.FD)
	case Port:
		return "port:" + strconv.Itoa(c.Port)
	case Tty:
		return "tty:" + c.Dev
	}
	return c.Kind.String()
}

// Pair is a parsed spec: the input and output channels. When Split is
// false In and Out are the same channel, opened once for both directions.
type Pair struct {
	In, Out Chan
	Split   bool
}

// String is the pair in spec form.
func (p Pair) String() string {
	if !p.Split {
		return p.In.String()
	}
	return p.In.String() + "," + p.Out.String()
}

// None is the spec of a line that does not exist.
const None = "none"

// ErrParse is the generic failure the line layer reports for a spec it
// cannot use ("setup_one_line failed for device N : failed to parse
// channel pair"); a type parser's own message, when it has one, is in the
// *Error wrapping it.
var ErrParse = errors.New("failed to parse channel pair")

// Error is a parse failure. Msg is the type parser's printk line (empty for
// an unknown type); it unwraps to ErrParse.
type Error struct {
	Spec string
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return ErrParse.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return ErrParse }

// Parse parses a spec other than "none" (see IsNone).
func Parse(spec string) (Pair, error) {
	if in, out, ok := strings.Cut(spec, ","); ok {
		ci, err := parseChan(spec, in)
		if err != nil {
			return Pair{}, err
		}
		co, err := parseChan(spec, out)
		if err != nil {
			return Pair{}, err
		}
		return Pair{In: ci, Out: co, Split: true}, nil
	}
	c, err := parseChan(spec, spec)
	if err != nil {
		return Pair{}, err
	}
	return Pair{In: c, Out: c}, nil
}

// IsNone reports whether spec says the line does not exist.
func IsNone(spec string) bool { return spec == None }

func parseChan(spec, s string) (Chan, error) {
	for _, n := range kindNames {
		rest, ok := strings.CutPrefix(s, n.name)
		if !ok {
			continue
		}
		c := Chan{Kind: n.kind}
		switch n.kind {
		case FD:
			arg, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return Chan{}, &Error{spec, "fd_init : channel type 'fd' must specify a file descriptor"}
			}
			v, ok := cNumber(arg)
			if !ok || v > 1<<31-1 {
				return Chan{}, &Error{spec, fmt.Sprintf("fd_init : couldn't parse file descriptor '%s'", arg)}
			}
			c.FD = int(v)
		case Port:
			arg, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return Chan{}, &Error{spec, "port_init : channel type 'port' must specify a port number"}
			}
			v, ok := cNumber(arg)
			if !ok || v > 1<<31-1 {
				return Chan{}, &Error{spec, fmt.Sprintf("port_init : couldn't parse port '%s'", arg)}
			}
			c.Port = int(v)
		case Tty:
			arg, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return Chan{}, &Error{spec, "tty_init : channel type 'tty' must specify a device"}
			}
			c.Dev = arg
		}
		return c, nil
	}
	return Chan{}, &Error{Spec: spec}
}

// cNumber parses s like strtoul(s, &end, 0) with *end required to be the
// end of the string: decimal, 0x hex or 0 octal, non-empty.
func cNumber(s string) (uint64, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' || s[0] == '_' || strings.Contains(s, "_") {
		return 0, false
	}
	base := 10
	digits := s
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// DefaultCon0 is con0's spec when the command line gives none.
const DefaultCon0 = "fd:0,fd:1"

// Stored is what UML keeps of a spec for config queries: its parser cuts
// an IN,OUT pair at the comma, so "null,fd:1" reads back as "null".
func Stored(spec string) string {
	in, _, _ := strings.Cut(spec, ",")
	return in
}
