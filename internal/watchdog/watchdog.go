// Package watchdog is uml_watchdog, the host half of a UML guest's
// /dev/watchdog: it signals readiness with one byte, then expects a ping
// byte on stdin at least every Timeout; on silence it kills the UML process
// (-pid) or sends the 24-byte HANG notification (-mconsole). EOF on stdin
// (the guest closed /dev/watchdog) ends it with status 0.
//
// Spec: shared/spec/misc-tools.md §1; argv: internal/watchdogproto.
package watchdog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/watchdogproto"
)

// Config is one run.
type Config struct {
	watchdogproto.Args
	// Timeout without a ping (watchdogproto.Timeout by default).
	Timeout time.Duration
	// Pause between the kill steps in -pid mode (1s by default).
	Pause time.Duration
}

// Run serves the watchdog on stdin/stdout and returns the exit status:
// 0 on EOF, 1 after acting on a hang, on a read error, or when the -pid
// process does not exist (checked first, silently, as the real helper).
func Run(cfg Config, stdin, stdout *os.File, stderr io.Writer) int {
	if cfg.Timeout <= 0 {
		cfg.Timeout = watchdogproto.Timeout
	}
	if cfg.Pause <= 0 {
		cfg.Pause = time.Second
	}
	if cfg.Mode == watchdogproto.ModePid && unix.Kill(cfg.Pid, 0) != nil {
		return 1
	}
	if _, err := stdout.Write([]byte{watchdogproto.Ready}); err != nil {
		return 1
	}
	// Put stdin on the runtime poller so the read can carry a deadline.
	in := stdin
	if err := unix.SetNonblock(int(stdin.Fd()), true); err == nil {
		in = os.NewFile(stdin.Fd(), "stdin")
	}
	buf := make([]byte, 1)
	for {
		in.SetReadDeadline(time.Now().Add(cfg.Timeout))
		_, err := in.Read(buf)
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return 0
		case errors.Is(err, os.ErrDeadlineExceeded):
			return hang(cfg, stderr)
		default:
			return 1
		}
	}
}

// hang acts on a missed deadline and returns 1.
func hang(cfg Config, stderr io.Writer) int {
	if cfg.Mode == watchdogproto.ModePid {
		unix.Kill(cfg.Pid, unix.SIGINT)
		time.Sleep(cfg.Pause)
		unix.Kill(cfg.Pid, unix.SIGINT)
		time.Sleep(cfg.Pause)
		unix.Kill(cfg.Pid, unix.SIGKILL)
		return 1
	}
	// An unbound datagram socket and a blocking sendto, as the real helper.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(stderr, "socket: %s\n", sys.Strerror(err))
		return 1
	}
	defer unix.Close(fd)
	err = unix.Sendto(fd, mconsole.WatchdogHangPacket(), 0, &unix.SockaddrUnix{Name: cfg.Socket})
	for err == unix.EINTR {
		err = unix.Sendto(fd, mconsole.WatchdogHangPacket(), 0, &unix.SockaddrUnix{Name: cfg.Socket})
	}
	if err != nil {
		fmt.Fprintf(stderr, "sendto: %s\n", sys.Strerror(err))
	}
	return 1
}
