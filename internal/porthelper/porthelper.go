// Package porthelper is port-helper's logic: hand the terminal on stdin back
// to a UML kernel as one SCM_RIGHTS datagram, then stay until the session
// ends — and, unlike uml-utilities' helper, notice when it has ended.
//
// Spec: shared/spec/channels.md §3 (telnetd mode: the socket is fd 3),
// §4 (xterm mode: -uml-socket PATH) and §5 (the binary).
//
// # What is done, in the real helper's order
//
//  1. argv[1] == "-uml-socket": socket(AF_UNIX, SOCK_DGRAM), bind to the
//     abstract address "\0" + printf("%5d", pid) (rest of sun_path zero,
//     addrlen 110), connect to argv[2] (the literal "(null)" when missing,
//     as glibc formats the real helper's NULL). Failures print perror-style
//     "socket: ...", "bind: ...", "connect: ..." and exit 1. Any other
//     arguments (in.telnetd passes login-style ones such as "-h localhost -p")
//     are ignored and the socket is the inherited fd 3.
//  2. SIGHUP is ignored; ioctl(0, TIOCNOTTY) detaches from the controlling
//     terminal; a failure prints "TIOCNOTTY failed in port-helper, ..." and
//     is otherwise ignored.
//  3. One sendmsg(2): data = the pid as a 4-byte host-order integer,
//     SCM_RIGHTS = fd 0.
//
// # When it ends (differences from the real helper)
//
// The real helper then pause()s until the kernel SIGKILLs it on line close;
// when the kernel halts with a still-pending port connection nobody kills it
// and it stays forever. This one waits the same way, but also exits (status
// 0) as soon as either
//
//   - the terminal hangs up: POLLHUP/POLLERR on fd 0, i.e. in.telnetd or the
//     terminal emulator closed the pty master (telnet client gone, window
//     closed); or
//   - the kernel process exits: the process that created the socket pair on
//     fd 3 (its SO_PEERCRED pid), or — when the socket has no peer
//     credentials, as with -uml-socket — the process that started our parent
//     (in.telnetd's or the emulator's parent, i.e. the kernel that ran it).
//     Its pidfd is watched. In telnetd mode the helper then also sends
//     SIGTERM to its in.telnetd (if the kernel started it), as the kernel
//     would have killed it on line close: in.telnetd does not reliably
//     notice its child's exit (inetutils' telnetd was seen missing it).
//
// It also closes every inherited descriptor besides 0-2 and its socket: UML
// leaks its fds into its helpers (other sessions' terminals, TCP connections
// and socket pairs), and a helper holding them keeps those sessions open.
//
// Both are watched through one epoll set that joins the runtime poller, so
// no goroutine blocks in a raw syscall and the shared terminal's file status
// flags are never touched. A failed send (no kernel listening) returns an
// error instead of blocking forever.
package porthelper

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/sys"
)

const (
	// SocketFlag is the argv[1] that selects xterm mode.
	SocketFlag = "-uml-socket"
	// TelnetdSocketFD is the socket in.telnetd hands the helper.
	TelnetdSocketFD = 3
	// MessageSize is the size of the datagram: the helper's pid.
	MessageSize = 4
	// abstractNameLen is sizeof(sun_path): the bound name fills it (addrlen 110).
	abstractNameLen = 108
)

// ErrReported marks a failure whose message was already printed to stderr in
// the real tool's words; the caller exits 1 without printing again.
var ErrReported = errors.New("port-helper: error already reported")

// Reason says why the helper stopped waiting.
type Reason int

const (
	// Cancelled: the context ended.
	Cancelled Reason = iota
	// TerminalHangup: fd 0 reported POLLHUP or POLLERR.
	TerminalHangup
	// KernelExited: the watched kernel process exited.
	KernelExited
)

func (r Reason) String() string {
	switch r {
	case TerminalHangup:
		return "terminal hung up"
	case KernelExited:
		return "kernel exited"
	}
	return "cancelled"
}

// EncodeMessage returns the datagram port-helper sends: pid, 4 bytes host order.
func EncodeMessage(pid int) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(int32(pid)))
}

// DecodeMessage returns the helper pid from a received datagram, or -1 when
// its length is not MessageSize (as the kernel records it).
func DecodeMessage(b []byte) int {
	if len(b) != MessageSize {
		return -1
	}
	return int(int32(binary.NativeEndian.Uint32(b)))
}

// AbstractName is the name the helper binds in xterm mode, in x/sys/unix
// notation ('@' for the leading NUL): "\0" + printf("%5d", pid), zero filled
// to the whole sun_path so that the address length is 110.
func AbstractName(pid int) string {
	name := fmt.Sprintf("@%5d", pid)
	if len(name) < abstractNameLen {
		name += strings.Repeat("\x00", abstractNameLen-len(name))
	}
	return name
}

// config is everything Run takes from the process, injectable for tests.
type config struct {
	args      []string
	termFD    int // the terminal to pass: 0
	sockFD    int // the inherited socket when not -uml-socket: 3
	pid       int
	stderr    io.Writer
	kernelPID func(sock int) int // the process whose exit ends the session
	ready     func()             // test hook: called after the send
}

// Run is port-helper with argv[1:] = args: it passes fd 0 to the kernel and
// waits until the session ends (see the package comment). It returns nil
// when the session ended, ctx.Err() when ctx was cancelled, ErrReported
// after printing a real-tool message, or an error to print.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	telnetd := !(len(args) > 0 && args[0] == SocketFlag)
	keep := -1
	if telnetd {
		keep = TelnetdSocketFD
	}
	closeInherited(keep)
	signal.Ignore(syscall.SIGHUP)
	parent := os.Getppid()
	var k kernel
	reason, err := run(ctx, config{
		args:      args,
		termFD:    0,
		sockFD:    TelnetdSocketFD,
		pid:       os.Getpid(),
		stderr:    stderr,
		kernelPID: func(sock int) int { k = findKernel(sock); return k.pid },
	})
	if err == nil && reason == KernelExited && telnetd && k.socketPair && os.Getppid() == parent {
		// What the kernel does on line close, for a kernel that cannot any
		// more: end the in.telnetd it started for this session, which then
		// closes the telnet connection. (in.telnetd cannot be relied on
		// to notice our exit: it may not even have set up its SIGCHLD
		// handler yet when the kernel halted during its start-up.)
		syscall.Kill(parent, syscall.SIGTERM)
	}
	return err
}

func run(ctx context.Context, c config) (Reason, error) {
	sock := c.sockFD
	if len(c.args) > 0 && c.args[0] == SocketFlag {
		path := "(null)"
		if len(c.args) > 1 {
			path = c.args[1]
		}
		s, err := openSocket(path, c.pid, c.stderr)
		if err != nil {
			return Cancelled, err
		}
		defer unix.Close(s)
		sock = s
	}
	if err := ioctlNoTTY(c.termFD); err != nil {
		fmt.Fprintf(c.stderr, "TIOCNOTTY failed in port-helper, check UML's exec call for xterm or telnetd: %s\n", sys.Strerror(err))
	}
	kpid := 0
	if c.kernelPID != nil {
		kpid = c.kernelPID(sock) // before the send: the kernel may close its end right after
	}
	if err := fdpass.SendRaw(sock, nil, EncodeMessage(c.pid), c.termFD); err != nil {
		return Cancelled, fmt.Errorf("pass the terminal to the kernel on fd %d: %w", sock, err)
	}
	if c.ready != nil {
		c.ready()
	}
	return waitEnd(ctx, c.termFD, kpid)
}

// openSocket is the -uml-socket setup, with the real helper's perror output.
func openSocket(path string, pid int, stderr io.Writer) (int, error) {
	fail := func(op string, err error) (int, error) {
		fmt.Fprintf(stderr, "%s: %s\n", op, sys.Strerror(err))
		return -1, fmt.Errorf("%w (%s %s: %v)", ErrReported, op, path, err)
	}
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail("socket", err)
	}
	// syscall's SockaddrUnix (unlike x/sys/unix's) takes a full 108-byte
	// abstract name, giving the real helper's addrlen of 110.
	if err := syscall.Bind(s, &syscall.SockaddrUnix{Name: AbstractName(pid)}); err != nil {
		unix.Close(s)
		return fail("bind", err)
	}
	for {
		err = unix.Connect(s, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(s)
		return fail("connect", err)
	}
	return s, nil
}

func ioctlNoTTY(fd int) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCNOTTY, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
