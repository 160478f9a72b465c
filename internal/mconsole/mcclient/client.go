// Package mcclient is the client side of the UML management console: it
// finds a machine's socket by umid or path, binds an abstract client address
// the way uml_mconsole does, sends requests and collects multi-part replies
// under a deadline, noticing when the machine is gone.
//
// Protocol: shared/spec/mconsole.md §2, §3, §6. A Client is not safe for
// concurrent use (replies are matched to requests only by order).
//
// Unlike the daemons, the client does not put its socket on the runtime
// poller: uml_mconsole is a one-shot process whose start-up cost is
// benchmarked against the C client, so it uses a blocking socket with
// SO_RCVTIMEO/SO_SNDTIMEO of at most Poll (200ms) and checks ctx and the
// machine's existence at every tick. No goroutine is started.
package mcclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/mconsole"
)

// Errors.
var (
	// ErrGone: the machine's socket vanished, refuses datagrams (stale) or
	// its pid file names a dead process.
	ErrGone = errors.New("the UML instance is gone")
	// ErrTimeout: no (complete) reply before the deadline.
	ErrTimeout = errors.New("no reply from the UML instance")
	// ErrNotFound: no candidate socket path exists.
	ErrNotFound = errors.New("no such UML instance")
)

// Response is a complete (possibly multi-part) reply.
type Response struct {
	// Err is the err field of the last packet, which is what uml_mconsole
	// reports (mconsole.ExitStatus(Err) is its exit status).
	Err uint32
	// Text is the concatenation of every packet's text.
	Text string
	// Parts is the number of packets received.
	Parts int
}

// OK reports whether the reply is a success.
func (r *Response) OK() bool { return r.Err == 0 }

// Line formats the reply as uml_mconsole prints it: "OK <text>" or
// "ERR <text>", newline-terminated.
func (r *Response) Line() string {
	if r.Err != 0 {
		return "ERR " + r.Text + "\n"
	}
	return "OK " + r.Text + "\n"
}

// Client talks to one machine's socket.
type Client struct {
	fd   int
	path string
	// Poll is how often a waiting Send checks that the machine still
	// exists (default 200ms).
	Poll time.Duration
}

// ClientName returns the text of uml_mconsole's client address for pid: the
// abstract name is "\0" + sprintf("%5d", pid), zero-filled to 108 bytes
// (addrlen 110).
func ClientName(pid int) string { return fmt.Sprintf("%5d", pid) }

// Dial returns a client for the socket at path. It binds uml_mconsole's
// abstract address for this pid, or an autobound one if that is taken (a
// second client in the same process). Dial does not contact the machine.
func Dial(path string) (*Client, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := bindAbstract(fd, ClientName(os.Getpid())); err != nil {
		if err != unix.EADDRINUSE {
			unix.Close(fd)
			return nil, os.NewSyscallError("bind", err)
		}
		// autobind: an abstract name chosen by the kernel
		if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError("bind", err)
		}
	}
	return &Client{fd: fd, path: path, Poll: 200 * time.Millisecond}, nil
}

// Path returns the machine's socket path.
func (c *Client) Path() string { return c.path }

// Close releases the client socket.
func (c *Client) Close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// Send sends one command (truncated to 511 bytes) and collects its reply.
// The files, if any, travel with the request as SCM_RIGHTS (umlfs).
// It ends with ErrTimeout at ctx's deadline, ctx.Err() on cancellation,
// and ErrGone when the machine disappears meanwhile.
func (c *Client) Send(ctx context.Context, text string, files ...*os.File) (*Response, error) {
	req, err := mconsole.NewRequest(text).MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := c.SendRaw(req, files...); err != nil {
		return nil, err
	}
	return c.Receive(ctx)
}

// SendRaw sends one raw request datagram.
func (c *Client) SendRaw(b []byte, files ...*os.File) error {
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	err := unix.Sendmsg(c.fd, b, oob, &unix.SockaddrUnix{Name: c.path}, 0)
	for err == unix.EINTR {
		err = unix.Sendmsg(c.fd, b, oob, &unix.SockaddrUnix{Name: c.path}, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("send to %s: %w (%v)", c.path, ErrGone, err)
		}
		if err == unix.EAGAIN {
			return fmt.Errorf("send to %s: %w (its queue stays full)", c.path, ErrTimeout)
		}
		return fmt.Errorf("send to %s: %w", c.path, os.NewSyscallError("sendmsg", err))
	}
	return nil
}

// Receive collects reply packets until one has more == 0.
func (c *Client) Receive(ctx context.Context) (*Response, error) {
	var resp Response
	var text strings.Builder
	buf := make([]byte, mconsole.MaxReplySize+64)
	for {
		p, err := c.receiveOne(ctx, buf)
		if err != nil {
			return nil, err
		}
		resp.Parts++
		text.WriteString(p.Text)
		resp.Err = p.Err
		if !p.More {
			resp.Text = text.String()
			return &resp, nil
		}
	}
}

func (c *Client) receiveOne(ctx context.Context, buf []byte) (mconsole.Reply, error) {
	deadline, hasDeadline := ctx.Deadline()
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return mconsole.Reply{}, fmt.Errorf("%w within the deadline (%s)", ErrTimeout, c.path)
			}
			return mconsole.Reply{}, err
		}
		wait := c.Poll
		if hasDeadline {
			wait = min(wait, time.Until(deadline))
		}
		wait = max(wait, time.Millisecond)
		tv := unix.NsecToTimeval(int64(wait))
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return mconsole.Reply{}, os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err == nil {
			var r mconsole.Reply
			if err := r.UnmarshalBinary(buf[:n]); err != nil {
				return r, fmt.Errorf("reply from %s: %w", c.path, err)
			}
			return r, nil
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EAGAIN {
			return mconsole.Reply{}, fmt.Errorf("receive from %s: %w", c.path, os.NewSyscallError("recvfrom", err))
		}
		if gone(c.path) {
			return mconsole.Reply{}, fmt.Errorf("%w (%s)", ErrGone, c.path)
		}
	}
}

// gone reports whether the socket at path no longer exists or the pid file
// next to it names a dead process.
func gone(path string) bool {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return true
	}
	pid, err := ReadPid(filepath.Join(filepath.Dir(path), "pid"))
	if err != nil {
		return false
	}
	return !Alive(pid)
}

// ReadPid reads a UML pid file ("%d\n").
func ReadPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content %q", path, b)
	}
	return pid, nil
}

// Alive reports whether process pid exists (kill(pid, 0) succeeds or fails
// with anything but ESRCH, the kernel's own test).
func Alive(pid int) bool {
	return unix.Kill(pid, 0) != unix.ESRCH
}
