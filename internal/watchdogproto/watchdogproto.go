// Package watchdogproto is the contract between the UML kernel's harddog
// driver and its host helper uml_watchdog: the helper's argv, the ready
// byte, the ping byte and the hang timeout. The 24-byte HANG packet the
// helper sends in -mconsole mode lives with the other notify messages in
// internal/mconsole (WatchdogHangPacket).
//
// Spec: shared/spec/misc-tools.md §1. Pure: no I/O.
package watchdogproto

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Contract constants.
const (
	// Path is where the kernel runs the helper from (absolute, no PATH).
	Path = "/usr/bin/uml_watchdog"
	// Ready is the byte the helper writes to stdout once running (the
	// kernel only waits for one byte; the real helper sends 0x00).
	Ready byte = 0
	// Ping is what the kernel writes to the helper's stdin for each guest
	// write to /dev/watchdog.
	Ping byte = '\n'
	// Timeout is how long the helper waits for a ping before acting.
	Timeout = 60 * time.Second
)

// Mode says how the helper reacts to a hang.
type Mode int

// Modes.
const (
	ModePid      Mode = iota // -pid PID: SIGINT, SIGINT, SIGKILL the UML process
	ModeMconsole             // -mconsole PATH: send a HANG notification
)

// Args is the helper's command line.
type Args struct {
	Mode   Mode
	Pid    int    // ModePid
	Socket string // ModeMconsole: the notify socket path
}

// ErrUsage covers every argv the real helper rejects (it exits 1 silently).
var ErrUsage = errors.New("uml_watchdog: usage: uml_watchdog -pid PID | -mconsole SOCKET")

// Parse reads the arguments after the program name. Like the real helper
// it needs at least two, looks only at the first two, and parses the pid
// with strtol base 0 semantics (decimal, 0x hex, 0 octal, optional sign;
// the whole word must be consumed; an empty word is 0).
func Parse(args []string) (Args, error) {
	if len(args) < 2 {
		return Args{}, ErrUsage
	}
	switch args[0] {
	case "-pid":
		pid, ok := ParseCLong(args[1])
		if !ok {
			return Args{}, ErrUsage
		}
		return Args{Mode: ModePid, Pid: pid}, nil
	case "-mconsole":
		return Args{Mode: ModeMconsole, Socket: args[1]}, nil
	}
	return Args{}, ErrUsage
}

// Argv returns the arguments the kernel passes for a.
func (a Args) Argv() []string {
	if a.Mode == ModeMconsole {
		return []string{"-mconsole", a.Socket}
	}
	return []string{"-pid", strconv.Itoa(a.Pid)}
}

// ParseCLong parses s like strtol(s, &end, 0) with *end == '\0' required:
// leading white space, an optional sign, then 0x/0X hex, 0 octal or
// decimal. An empty (or sign-only) number parses as 0, as strtol does.
func ParseCLong(s string) (int, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, true
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	v, err := strconv.ParseInt(s, base, 64)
	if err != nil || strings.ContainsAny(s[:1], "+-") {
		return 0, false
	}
	if neg {
		v = -v
	}
	if v != int64(int(v)) || v > 1<<31-1 || v < -1<<31 {
		// pid_t is 32 bits; larger values can't name a process
		return 0, false
	}
	return int(v), true
}
