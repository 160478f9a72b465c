//go:build linux

package netdev

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

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
	return &Datagram{f: p, rc: rc, to: &unix.SockaddrInet4{Addr: group.As4(), Port: port}, rmm: sys.NewMmsg(relayBatch)}, nil
}

// ethN=mcast,<mac>,<group>,<port>,<ttl>: every device on one IPv4
// multicast group and port is on one LAN (net.md §2). P opens the socket
// in the host's namespace; K sends frames to the group.

func init() {
	Register(&Driver{
		Name: "mcast",
		Help: "mcast[,<mac>[,<group>[,<port>[,<ttl>]]]] (default " + DefaultMcastGroup + ", " +
			strconv.Itoa(DefaultMcastPort) + ", " + strconv.Itoa(DefaultMcastTTL) + ")",
		Parse: parseMcast,
		Open:  openMcast,
		Wrap:  wrapDatagram,
	})
}

type mcastSpec struct {
	MAC, Group string
	Port, TTL  int
}

func (s mcastSpec) Fields() []string {
	return []string{s.MAC, s.Group, strconv.Itoa(s.Port), strconv.Itoa(s.TTL)}
}

func parseMcast(f []string) (Spec, error) {
	if len(f) > 4 {
		return nil, fmt.Errorf("mcast_setup - Extra garbage on specification : '%s'", strings.Join(f[4:], ","))
	}
	s := mcastSpec{MAC: field(f, 0), Group: DefaultMcastGroup, Port: DefaultMcastPort, TTL: DefaultMcastTTL}
	if g := field(f, 1); g != "" {
		s.Group = g
	}
	var err error
	if s.Port, err = numField(f, 2, 16, s.Port, "mcast_setup - Bad port"); err != nil {
		return nil, err
	}
	if s.TTL, err = numField(f, 3, 8, s.TTL, "mcast_setup - Bad ttl"); err != nil {
		return nil, err
	}
	return s, nil
}

func openMcast(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(mcastSpec)
	h.logf("Configured mcast device: %s:%d-%d", s.Group, s.Port, s.TTL)
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	h.logf("mcast backend multicast address: %s:%d, TTL:%d", s.Group, s.Port, s.TTL)
	addr, err := netip.ParseAddr(s.Group)
	if err != nil || !addr.Is4() {
		return nil, fmt.Errorf("eth%d: mcast group '%s' is not an IPv4 address", n, s.Group)
	}
	sock, err := OpenMcast(addr, s.Port, s.TTL)
	if err != nil {
		return nil, err
	}
	return softOffload(newOpened(n, "mcast", mac, sock, datagramParams{Group: s.Group, Port: s.Port}))
}
