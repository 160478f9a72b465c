//go:build linux

// Package switchtest is a uml_switch client speaking the daemon transport
// exactly like a UML 6.1 kernel (abstract 110-byte data address with a
// {0, pad, pid, usec} blob and a random tail, v3 request, 110-byte reply),
// for tests and the load generator in bench/.
//
// Spec: shared/spec/switch.md §2. A Client is used by one goroutine at a
// time for sending and one for receiving.
package switchtest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// Client is one attached port.
type Client struct {
	Ctl    *net.UnixConn
	Addr   switchproto.Sockaddr // our data address
	Switch switchproto.Sockaddr // the switch's data address (reply)
	f      *os.File
	rc     syscall.RawConn
	mm     sys.Mmsg
	// blocking makes SendBurst wait in the kernel for room in the
	// switch's queue (a unix datagram socket's poll cannot report it).
	blocking bool
}

// SetBlockingSends makes SendBurst block in sendmmsg while the switch's
// receive queue is full (load generators). Receives stay poller-driven.
func (c *Client) SetBlockingSends() error {
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	c.blocking = true
	return serr
}

var seq atomic.Int32

// Options tune Dial.
type Options struct {
	// Request overrides the request bytes (raw; Addr is still bound).
	Request func(addr switchproto.Sockaddr) []byte
	// NoReply skips reading the reply (v0 clients).
	NoReply bool
	// Addr overrides the data address (default: UML style abstract).
	Addr *switchproto.Sockaddr
}

// UMLAddr returns a UML-style data address: {0, pad, pid, usec} then random
// bytes, as the real kernel's uninitialised tail.
func UMLAddr() switchproto.Sockaddr {
	a := switchproto.SwitchSockaddr(int32(os.Getpid()), int32(seq.Add(1))<<16|int32(time.Now().Nanosecond()/1000&0xffff))
	rand.Read(a[2+12:])
	return a
}

// Dial attaches to the switch whose control socket is ctlPath.
func Dial(ctlPath string, o *Options) (*Client, error) {
	if o == nil {
		o = &Options{}
	}
	addr := UMLAddr()
	if o.Addr != nil {
		addr = *o.Addr
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	n := switchproto.SockaddrSize
	if !addr.IsAbstract() {
		n = 2 + len(addr.Path()) + 1
	}
	if err := sys.BindRaw(fd, addr[:n]); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	c := &Client{Addr: addr, f: os.NewFile(uintptr(fd), "switchtest data")}
	c.rc, _ = c.f.SyscallConn()
	c.mm = sys.NewMmsg(64)
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ctlPath, Net: "unix"})
	if err != nil {
		c.f.Close()
		return nil, err
	}
	c.Ctl = conn
	req := (&switchproto.Request{Version: 3, Addr: addr})
	raw, _ := req.MarshalBinary()
	if o.Request != nil {
		raw = o.Request(addr)
	}
	if _, err := conn.Write(raw); err != nil {
		c.Close()
		return nil, fmt.Errorf("write request: %w", err)
	}
	if o.NoReply {
		return c, nil
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, switchproto.ReplySize)
	if _, err := io.ReadFull(conn, buf); err != nil {
		c.Close()
		return nil, fmt.Errorf("read reply: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	c.Switch, _ = switchproto.ParseReply(buf)
	return c, nil
}

// Close detaches (the switch sees EOF on the control connection).
func (c *Client) Close() error {
	if c.Ctl != nil {
		c.Ctl.Close()
	}
	return c.f.Close()
}

// CloseData closes only the data socket; the port stays registered until
// the control connection closes.
func (c *Client) CloseData() error { return c.f.Close() }

// Send sends one frame to the switch (110-byte destination, as UML does).
func (c *Client) Send(frame []byte) error {
	return c.SendTo(frame, &c.Switch, switchproto.SockaddrSize)
}

// SendTo sends one datagram to an arbitrary address.
func (c *Client) SendTo(frame []byte, to *switchproto.Sockaddr, n int) error {
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = sys.SendtoRaw(int(fd), frame, unix.MSG_DONTWAIT, to[:n])
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

// Recv receives one frame, waiting at most d.
func (c *Client) Recv(buf []byte, d time.Duration) (int, error) {
	c.f.SetReadDeadline(time.Now().Add(d))
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// SendBurst sends frame count times with sendmmsg (blocking while the
// switch's queue is full) and returns how many were sent.
func (c *Client) SendBurst(frame []byte, count int) (int, error) {
	flags := unix.MSG_DONTWAIT
	if c.blocking {
		flags = 0
	}
	sent := 0
	for sent < count {
		k := min(count-sent, len(c.mm.Hdrs))
		for i := 0; i < k; i++ {
			c.mm.Set(i, frame, c.Switch[:])
		}
		var n int
		var serr error
		err := c.rc.Write(func(fd uintptr) bool {
			n, serr = c.mm.Sendmmsg(int(fd), 0, k, flags)
			return !errors.Is(serr, unix.EAGAIN)
		})
		if err != nil {
			return sent, err
		}
		if serr != nil {
			return sent, serr
		}
		sent += n
	}
	return sent, nil
}

// RecvBurst receives up to 64 frames into bufs (each at least the frame
// size), waiting until at least one arrives or the deadline set with
// SetReadDeadline passes. It returns the count and total bytes.
func (c *Client) RecvBurst(bufs [][]byte) (int, int, error) {
	k := min(len(bufs), len(c.mm.Hdrs))
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		for i := 0; i < k; i++ {
			c.mm.Set(i, bufs[i], nil)
		}
		n, rerr = c.mm.Recvmmsg(int(fd), 0, k, unix.MSG_DONTWAIT)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, 0, err
	}
	if rerr != nil {
		return 0, 0, rerr
	}
	total := 0
	for i := 0; i < n; i++ {
		total += int(c.mm.Hdrs[i].Len)
	}
	return n, total, nil
}

// SetReadDeadline sets the data socket's read deadline.
func (c *Client) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// Frame builds an Ethernet frame of size bytes from src to dst.
func Frame(dst, src [6]byte, size int) []byte {
	f := make([]byte, max(size, 14))
	copy(f, dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x88b5) // local experimental EtherType
	for i := 14; i < len(f); i++ {
		f[i] = byte(i)
	}
	return f
}

// SendRights sends payload to the switch with the descriptor fd attached
// (SCM_RIGHTS), as a vnet client attaching its guest's TAP does.
func (c *Client) SendRights(payload []byte, fd int) error {
	var serr error
	err := c.rc.Write(func(s uintptr) bool {
		serr = sys.SendmsgRaw(int(s), payload, unix.UnixRights(fd), unix.MSG_DONTWAIT, c.Switch[:])
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}
