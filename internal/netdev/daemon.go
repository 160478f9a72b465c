//go:build linux

package netdev

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// DefaultSwitchCtl is the Debian build's default control socket of
// ethN=daemon (net.md §2).
const DefaultSwitchCtl = "/var/run/uml-utilities/uml_switch.ctl"

// DaemonConn is an attachment to a uml_switch made exactly like UML 6.1
// (switch.md §2): the control connection, which must stay open for the
// port's lifetime, and the bound data socket.
type DaemonConn struct {
	Ctl    *net.UnixConn
	Data   *os.File             // bound SOCK_DGRAM data socket
	Addr   switchproto.Sockaddr // our data address
	Switch switchproto.Sockaddr // the switch's data address (its reply)
	// Vnet: the switch took the vnet extension (switchproto.HasVnet):
	// frames both ways carry a virtio_net_hdr, and Data is connected to
	// the switch's port socket.
	Vnet bool
}

var dialSeq atomic.Int32

// umlAddr is UML's data address: {0, pad[3], pid, usec} then random bytes
// (the real kernel's uninitialised tail), abstract, full length, marked
// for the vnet extension (a switch without it sees only UML's random tail).
func umlAddr() switchproto.Sockaddr {
	usec := int32(time.Now().Nanosecond()/1000) ^ dialSeq.Add(1)<<20
	a := switchproto.SwitchSockaddr(int32(os.Getpid()), usec)
	rand.Read(a[2+12:])
	a.SetVnet()
	return a
}

// vnetSndBuf is the send buffer of a vnet data socket: room for a burst of
// 64 KiB segments (capped at net.core.wmem_max without CAP_NET_ADMIN).
const vnetSndBuf = 4 << 20

// addrLen is the length UML passes with a protocol address: 110 for an
// abstract one (its whole sun_path, which x/sys cannot express), family +
// path + NUL for a named one.
func addrLen(a *switchproto.Sockaddr) int {
	if a.IsAbstract() {
		return switchproto.SockaddrSize
	}
	return 2 + len(a.Path()) + 1
}

// DialDaemon attaches to the switch whose control socket is ctl. Errors
// carry UML's daemon_open wording and the errno.
func DialDaemon(ctl string) (*DaemonConn, error) {
	addr := umlAddr()
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("daemon_open : control connect failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("daemon_open : data socket failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	if err := sys.BindRaw(fd, addr[:addrLen(&addr)]); err != nil {
		unix.Close(fd)
		conn.Close()
		return nil, fmt.Errorf("daemon_open : data bind failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	d := &DaemonConn{Ctl: conn, Data: os.NewFile(uintptr(fd), "uml_switch data"), Addr: addr}
	req, _ := (&switchproto.Request{Version: 3, Type: switchproto.TypeNewControl, Addr: addr}).MarshalBinary()
	if _, err := conn.Write(req); err != nil {
		d.Close()
		return nil, fmt.Errorf("daemon_open : control setup request failed, err = %d", int(sys.ErrnoOf(err, 0)))
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, switchproto.ReplySize)
	n, err := io.ReadFull(conn, buf)
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		d.Close()
		if n == 0 && sys.ErrnoOf(err, 0) == 0 {
			return nil, fmt.Errorf("daemon_open : read of data socket failed, err = %d", n)
		}
		return nil, fmt.Errorf("daemon_open : read of data socket failed, err = %d", int(sys.ErrnoOf(err, 0)))
	}
	d.Switch, _ = switchproto.ParseReply(buf)
	if d.Switch.HasVnet() {
		// The switch sends from the address it replied (its port's own
		// socket): connected, a full queue can be waited for.
		if err := sys.ConnectRaw(fd, d.Switch[:]); err == nil {
			d.Vnet = true
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, vnetSndBuf) != nil {
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, vnetSndBuf)
			}
		}
	}
	return d, nil
}

// Close detaches: the switch sees EOF on the control connection.
func (d *DaemonConn) Close() error {
	return errors.Join(d.Ctl.Close(), d.Data.Close())
}

// Daemon is the daemon transport over a data socket already attached to a
// switch (by DialDaemon, possibly in another process and namespace).
type Daemon struct {
	f         *os.File
	rc        syscall.RawConn
	to        switchproto.Sockaddr
	connected bool     // vnet: write on the connected socket, waiting for room
	mm        sys.Mmsg // WriteFrames' batch (the writer's)
	rmm       sys.Mmsg // ReadFrames' batch (the reader's)
}

// NewDaemon wraps the attached data socket f (owned from now on), sending
// to the switch's data address sw.
func NewDaemon(f *os.File, sw switchproto.Sockaddr) (*Daemon, error) {
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		return nil, err
	}
	rc, err := p.SyscallConn()
	if err != nil {
		p.Close()
		return nil, err
	}
	return &Daemon{f: p, rc: rc, to: sw, mm: sys.NewMmsg(64), rmm: sys.NewMmsg(relayBatch)}, nil
}

// ReadFrame implements Transport (recvfrom; the sender is not checked).
func (d *Daemon) ReadFrame(b []byte) (int, error) { return d.f.Read(b) }

// WriteFrame implements Transport: one non-blocking sendto to the
// switch's address. A full switch queue (EAGAIN) drops the frame, as a
// busy wire would: poll cannot report room in an unconnected datagram
// socket's peer, so waiting for it could stall the relay.
func (d *Daemon) WriteFrame(b []byte) error {
	if d.connected {
		_, err := d.f.Write(b)
		return err
	}
	var serr error
	err := d.rc.Control(func(fd uintptr) {
		serr = sys.SendtoRaw(int(fd), b, unix.MSG_DONTWAIT, d.to[:addrLen(&d.to)])
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("sendto", serr)
	}
	return nil
}

// WriteFrames implements FramesWriter: one sendmmsg to the switch's
// address, dropping what does not fit its queue, as WriteFrame does.
func (d *Daemon) WriteFrames(frames [][]byte) error {
	if d.connected {
		for _, f := range frames {
			if err := d.WriteFrame(f); err != nil {
				return err
			}
		}
		return nil
	}
	to := d.to[:addrLen(&d.to)]
	for len(frames) > 0 {
		n := min(len(frames), len(d.mm.Hdrs))
		for i, f := range frames[:n] {
			d.mm.Set(i, f, to)
		}
		var serr error
		err := d.rc.Control(func(fd uintptr) {
			_, serr = d.mm.Sendmmsg(int(fd), 0, n, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("sendmmsg", serr)
		}
		frames = frames[n:]
	}
	return nil
}

// Close implements Transport.
func (d *Daemon) Close() error { return d.f.Close() }

// ethN=daemon,<mac>,<socktype>,<ctl>[,<data>]: a port of a uml_switch
// (switch.md §2-§3). P connects to the switch's control socket in the
// host's namespace and hands K the data socket; K sends frames to the
// switch's data address.

func init() {
	Register(&Driver{
		Name: "daemon",
		Help: "daemon[,<mac>[,unix[,<control socket>]]] (a uml_switch; default control socket\n" +
			DefaultSwitchCtl + ")",
		Parse: parseDaemon,
		Open:  openDaemon,
		Wrap:  wrapDaemon,
	})
}

type daemonSpec struct {
	MAC, Type, Ctl string
	Data           string // ignored, as UML ignores it (with a message)
}

func (s daemonSpec) Fields() []string {
	f := []string{s.MAC, s.Type, s.Ctl}
	if s.Data != "" {
		f = append(f, s.Data)
	}
	return f
}

func parseDaemon(f []string) (Spec, error) {
	s := daemonSpec{MAC: field(f, 0), Type: field(f, 1), Ctl: field(f, 2), Data: strings.Join(f[min(3, len(f)):], ",")}
	if s.Type == "" {
		s.Type = "unix"
	}
	if s.Ctl == "" {
		s.Ctl = DefaultSwitchCtl
	}
	return s, nil
}

type daemonParams struct {
	Switch []byte `json:"switch"` // the switch's data address
}

func openDaemon(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(daemonSpec)
	if s.Data != "" {
		h.logf("daemon_setup : Ignoring data socket specification")
	}
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	h.logf("daemon backend (uml_switch version 3) - %s:%s", s.Type, s.Ctl)
	if s.Type != "unix" {
		return nil, fmt.Errorf("daemon_open : control connect failed, errno = %d (socket type '%s' is not supported; use unix)", 22, s.Type)
	}
	d, err := DialDaemon(s.Ctl)
	if err != nil {
		return nil, err
	}
	o, err := newOpened(n, "daemon", mac, d.Data, daemonParams{Switch: append([]byte(nil), d.Switch[:]...)})
	if err != nil {
		d.Close()
		return nil, err
	}
	// The guest sends 64 KiB segments with partial checksums: they cross
	// to the switch whole (Vnet), or K segments them for a switch without
	// the extension.
	o.Eth.Vnet, o.Eth.Offload = d.Vnet, true // Offload alone: softOffload
	o.own(func() { d.Close() })
	return o, nil
}

func wrapDaemon(e plan.Eth, f *os.File) (Transport, error) {
	var p daemonParams
	if err := params(e, &p); err != nil {
		f.Close()
		return nil, err
	}
	var sw switchproto.Sockaddr
	copy(sw[:], p.Switch)
	d, err := NewDaemon(f, sw)
	if err != nil {
		return nil, err
	}
	d.connected = e.Vnet
	return d, nil
}

// attachWait bounds the wait for the switch's answer to an attach.
const attachWait = 2 * time.Second

// attach hands the guest's TAP tap (with vnet headers) to a switch that took
// the vnet extension (switchproto.AttachTap), which then reads and writes
// it itself; it reports whether the switch answered that it did. Frames
// that arrive on the data socket meanwhile are dropped (the link is coming
// up). A switch without attach support never answers.
func (d *Daemon) attach(tap *File) bool {
	if !d.connected {
		return false
	}
	var serr error
	err := tap.rc.Control(func(tfd uintptr) {
		d.rc.Control(func(fd uintptr) {
			serr = unix.Sendmsg(int(fd), []byte(switchproto.AttachTap), unix.UnixRights(int(tfd)), nil, unix.MSG_DONTWAIT)
		})
	})
	if err != nil || serr != nil {
		return false
	}
	d.f.SetReadDeadline(time.Now().Add(attachWait))
	defer d.f.SetReadDeadline(time.Time{})
	buf := make([]byte, bufSize)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == switchproto.Attached {
			return true
		}
	}
}
