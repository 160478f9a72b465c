//go:build linux

package netdev

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/sys"
	"golang.org/x/sys/unix"
)

// ethN=ucast,<mac>,<remote addr>,<listen port>,<remote port>: a
// point-to-point UDP link (net.md §2). P binds the listen port in the
// host's namespace; K sends frames to the peer.

func init() {
	Register(&Driver{
		Name:  "ucast",
		Help:  "ucast,[<mac>],<remote addr>[,<listen port>[,<remote port>]] (default " + strconv.Itoa(DefaultUcastPort) + ")",
		Parse: parseUcast,
		Open:  openUcast,
		Wrap:  wrapDatagram,
	})
}

type ucastSpec struct {
	MAC, Addr    string
	LPort, RPort int
}

func (s ucastSpec) Fields() []string {
	return []string{s.MAC, s.Addr, strconv.Itoa(s.LPort), strconv.Itoa(s.RPort)}
}

func parseUcast(f []string) (Spec, error) {
	if len(f) > 4 {
		return nil, fmt.Errorf("ucast_setup - Extra garbage on specification : '%s'", strings.Join(f[4:], ","))
	}
	s := ucastSpec{MAC: field(f, 0), Addr: field(f, 1), LPort: DefaultUcastPort, RPort: DefaultUcastPort}
	var err error
	if s.LPort, err = numField(f, 2, 16, s.LPort, "ucast_setup - Bad listen port"); err != nil {
		return nil, err
	}
	if s.RPort, err = numField(f, 3, 16, s.RPort, "ucast_setup - Bad remote port"); err != nil {
		return nil, err
	}
	return s, nil
}

func openUcast(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(ucastSpec)
	h.logf("Configured ucast device: :%d -> %s:%d", s.LPort, s.Addr, s.RPort)
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	h.logf("ucast backend address: %s:%d listen port: %d", s.Addr, s.RPort, s.LPort)
	ip, err := netip.ParseAddr(s.Addr)
	if err != nil || !ip.Is4() {
		return nil, fmt.Errorf("eth%d: ucast remote address '%s' is not an IPv4 address (errno = 22)", n, s.Addr)
	}
	sock, err := OpenUcast(s.LPort)
	if err != nil {
		return nil, err
	}
	return softOffload(newOpened(n, "ucast", mac, sock, datagramParams{Group: s.Addr, Port: s.RPort}))
}

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
