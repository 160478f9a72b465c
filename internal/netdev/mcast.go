//go:build linux

package netdev

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// Mcast defaults of ethN=mcast (net.md §2).
const (
	DefaultMcastGroup = "239.192.168.1"
	DefaultMcastPort  = 1102
	DefaultMcastTTL   = 1
)

// OpenMcast opens the UDP socket of UML's mcast transport: SO_REUSEADDR,
// IP_MULTICAST_TTL ttl, IP_MULTICAST_LOOP on, bound to group:port (not the
// wildcard), member of group on interface 0.0.0.0. Errors carry UML's
// umcast_open wording where it has one.
func OpenMcast(group netip.Addr, port, ttl int) (*os.File, error) {
	if !group.Is4() {
		return nil, fmt.Errorf("umcast_open: %s is not an IPv4 address", group)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("umcast_open : data socket failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	fail := func(format string, err error) (*os.File, error) {
		unix.Close(fd)
		return nil, fmt.Errorf(format, int(sys.ErrnoOf(err, 0)))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("umcast_open: SO_REUSEADDR failed, errno = %d", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl); err != nil {
		return fail("umcast_open: IP_MULTICAST_TTL failed, error = %d", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
		return fail("umcast_open: IP_MULTICAST_LOOP failed, error = %d", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: group.As4(), Port: port}); err != nil {
		return fail("umcast_open: bind failed, errno = %d", err)
	}
	mreq := &unix.IPMreq{Multiaddr: group.As4()}
	if err := unix.SetsockoptIPMreq(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
		return fail("umcast_open: IP_ADD_MEMBERSHIP failed, error = %d (the host needs a multicast route, e.g. ip route add 224.0.0.0/4 dev eth0)", err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("mcast %s:%d", group, port)), nil
}

// Datagram is a transport over a datagram socket that sends every frame to
// one address (mcast: the group) and receives from anyone.
type Datagram struct {
	f  *os.File
	rc syscall.RawConn
	to unix.Sockaddr
}

// NewMcast wraps the socket from OpenMcast (owned from now on), sending to
// group:port.
func NewMcast(f *os.File, group netip.Addr, port int) (*Datagram, error) {
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		return nil, err
	}
	rc, err := p.SyscallConn()
	if err != nil {
		p.Close()
		return nil, err
	}
	return &Datagram{f: p, rc: rc, to: &unix.SockaddrInet4{Addr: group.As4(), Port: port}}, nil
}

// ReadFrame implements Transport.
func (d *Datagram) ReadFrame(b []byte) (int, error) { return d.f.Read(b) }

// WriteFrame implements Transport (non-blocking; a full queue drops).
func (d *Datagram) WriteFrame(b []byte) error {
	var serr error
	if err := d.rc.Control(func(fd uintptr) { serr = unix.Sendto(int(fd), b, unix.MSG_DONTWAIT, d.to) }); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("sendto", serr)
	}
	return nil
}

// Close implements Transport.
func (d *Datagram) Close() error { return d.f.Close() }

// Ucast defaults of ethN=ucast (net.md §2).
const DefaultUcastPort = 1102

// OpenUcast opens the UDP socket of UML's ucast transport: SO_REUSEADDR,
// bound to 0.0.0.0:lport.
func OpenUcast(lport int) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("umcast_open : data socket failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("umcast_open: SO_REUSEADDR failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: lport}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("umcast_open: bind failed, errno = %d", int(sys.ErrnoOf(err, 0)))
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("ucast :%d", lport)), nil
}

// NewDatagram wraps a UDP socket (owned from now on) that sends every frame
// to addr:port: mcast (the group) and ucast (the peer).
func NewDatagram(f *os.File, addr netip.Addr, port int) (*Datagram, error) {
	return NewMcast(f, addr, port)
}
