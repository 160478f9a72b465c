// Package portchan is the kernel side of UML's port and xterm console
// channels: it starts the program that owns the terminal — in.telnetd for a
// TCP connection, a terminal emulator for an xterm line — with port-helper
// underneath, receives the terminal fd that port-helper sends back over a
// unix datagram socket, and hands it to the console layer.
//
// Spec: shared/spec/channels.md §3 (port channel, in.telnetd invocation,
// "no one waiting" text) and §4 (xterm channel). The datagram format is
// porthelper.EncodeMessage; fds travel with internal/fdpass.
//
// # Port channel
//
// ListenPort binds one TCP listener per port (all lines naming the port share
// it). Every accepted connection immediately gets
// "in.telnetd -L <helper>" (PATH lookup) with the connection on fds 0, 1, 2
// and one end of a SOCK_DGRAM socket pair, shut down for reading, on fd 3.
// When no line is waiting (no Accept in progress) the connection first gets
// NoWaiterMessage and the kernel log line "No one waiting for port"; it stays
// pending until a line calls Accept. The terminal port-helper sends is
// queued for the next Accept. Close stops listening and, unlike the real
// kernel, kills the in.telnetd and port-helper of still-pending connections.
//
// # Xterm channel
//
// OpenXterm binds a datagram socket at a fresh /tmp/xterm-pipeXXXXXX and runs
// "<emulator> <title switch> <title> <exec switch> <helper> -uml-socket
// <path>"; it waits (as long as ctx allows: the real kernel waits forever)
// for the helper's message, then removes the socket.
//
// # Ownership
//
// A Terminal belongs to the caller, whose Close does what the kernel does
// when a line closes: close the fd, SIGKILL the helper pid from the message
// and the process we started, and (our addition) reap that process. Port
// owns one goroutine for the listener and one per connection until its
// terminal is taken by Accept or the Port is closed; Close waits for them.
// The received terminal is non-blocking and close-on-exec (it joins the
// runtime poller); raw mode is left to the caller (Terminal.MakeRaw), as the
// kernel applies it only when the line's raw option is on.
package portchan

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/porthelper"
	"github.com/umlkit/umlkit/internal/sys"
)

const (
	// DefaultHelper is where Debian's kernel looks for port-helper (the
	// double slash is literal).
	DefaultHelper = "/usr/lib//uml/port-helper"
	// HelperEnv overrides DefaultHelper for the port channel.
	HelperEnv = "UML_PORT_HELPER"
	// DefaultTelnetd is run with PATH lookup.
	DefaultTelnetd = "in.telnetd"

	// NoWaiterMessage is written, NUL included, to a connection that no
	// line is waiting for.
	NoWaiterMessage = "****\n" +
		"There are currently no UML consoles waiting for port connections.\n" +
		"Either disconnect from one to make it available or activate some more\n" +
		"by enabling more consoles in the UML /etc/inittab.\n" +
		"****\n\x00"
	// NoWaiterLog is the kernel log line that goes with NoWaiterMessage.
	NoWaiterLog = "No one waiting for port"
	// HelperHint is logged after a HelperError when HelperEnv was not set.
	HelperHint = "Set UML_PORT_HELPER environment variable to path to uml-utilities port-helper binary"
)

// ErrClosed is returned by Accept after Close.
var ErrClosed = errors.New("port channel closed")

// HelperError says the port-helper executable is not usable; its message is
// the kernel's printk text.
type HelperError struct {
	Path    string
	FromEnv bool // the path came from UML_PORT_HELPER (no HelperHint then)
	Err     error
}

func (e *HelperError) Error() string {
	return fmt.Sprintf("port_connection : error accessing port-helper executable at %s: %s", e.Path, sys.Strerror(e.Err))
}

func (e *HelperError) Unwrap() error { return e.Err }

// HelperPath returns the port-helper the port channel runs: $UML_PORT_HELPER
// (looked up with getenv) or DefaultHelper.
func HelperPath(getenv func(string) string) (path string, fromEnv bool) {
	if p := getenv(HelperEnv); p != "" {
		return p, true
	}
	return DefaultHelper, false
}

// CheckHelper returns a *HelperError unless path is executable.
func CheckHelper(path string, fromEnv bool) error {
	if err := unix.Access(path, unix.X_OK); err != nil {
		return &HelperError{Path: path, FromEnv: fromEnv, Err: err}
	}
	return nil
}

// Terminal is a terminal handed back by port-helper.
type Terminal struct {
	// File is the terminal (the pty slave under in.telnetd or the
	// emulator), non-blocking and close-on-exec.
	File *os.File
	// HelperPID is the pid port-helper sent, -1 if the message was not 4 bytes.
	HelperPID int
	// Proc is in.telnetd or the emulator.
	Proc *os.Process

	proc      *child
	closeOnce sync.Once
}

// MakeRaw puts the terminal in raw mode (cfmakeraw), as the kernel does when
// the line's raw option is on.
func (t *Terminal) MakeRaw() error {
	rc, err := t.File.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		tio, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			opErr = os.NewSyscallError("tcgetattr", err)
			return
		}
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cflag &^= unix.CSIZE | unix.PARENB
		tio.Cflag |= unix.CS8
		tio.Cc[unix.VMIN] = 1
		tio.Cc[unix.VTIME] = 0
		if err := unix.IoctlSetTermios(int(fd), unix.TCSETS, tio); err != nil {
			opErr = os.NewSyscallError("tcsetattr", err)
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

// Close closes the terminal and ends its session as the kernel does on line
// close: SIGKILL to the helper pid and to in.telnetd / the emulator, which
// is then reaped. It is idempotent.
func (t *Terminal) Close() error {
	var err error
	t.closeOnce.Do(func() {
		err = t.File.Close()
		if t.HelperPID > 0 {
			syscall.Kill(t.HelperPID, syscall.SIGKILL)
		}
		if t.proc != nil {
			t.proc.kill()
		}
	})
	return err
}

// child is a process we started, reaped by its own goroutine.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
}

func startChild(cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// terminalFrom turns a received fd into a non-blocking, pollable file.
func terminalFrom(f *os.File, data []byte, proc *child) (*Terminal, error) {
	tf, err := sys.Pollable(f, "portchan-terminal")
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Terminal{
		File:      tf,
		HelperPID: porthelper.DecodeMessage(data),
		Proc:      proc.cmd.Process,
		proc:      proc,
	}, nil
}
