//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/encap"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/sys"
)

// What the IP tunnels (gre, l2tpv3) share: the host socket P opens (raw IP
// protocol proto, or UDP), bound to src and connected to dst, and the
// frame transport K wraps around it, which adds and checks the tunnel's
// header (internal/encap).

// tunnelAddrs are a tunnel's endpoints.
type tunnelAddrs struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// parseTunnelAddrs reads src=, dst= (required) and v6= (the family of
// both). Names are not resolved: give addresses.
func parseTunnelAddrs(a vecArgs, what string) (tunnelAddrs, error) {
	var t tunnelAddrs
	v6 := a.flag("v6")
	dst, ok := a["dst"]
	if !ok {
		return t, fmt.Errorf("transport=%s needs dst=", what)
	}
	var err error
	if t.Dst, err = netip.ParseAddr(dst); err != nil {
		return t, fmt.Errorf("transport=%s: dst '%s' is not an address", what, dst)
	}
	if src := a["src"]; src != "" {
		if t.Src, err = netip.ParseAddr(src); err != nil {
			return t, fmt.Errorf("transport=%s: src '%s' is not an address", what, src)
		}
	}
	for _, ad := range []netip.Addr{t.Src, t.Dst} {
		if ad.IsValid() && ad.Unmap().Is4() == v6 {
			if v6 {
				return t, fmt.Errorf("transport=%s: v6=1 needs IPv6 addresses", what)
			}
			return t, fmt.Errorf("transport=%s: IPv6 addresses need v6=1", what)
		}
	}
	return t, nil
}

func sockaddr(a netip.Addr, port uint16) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: int(port)}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: int(port)}
}

// openTunnelSocket opens the tunnel's socket: raw IP protocol proto (typ
// SOCK_RAW, which needs CAP_NET_RAW) or UDP (typ SOCK_DGRAM).
func openTunnelSocket(t tunnelAddrs, typ, proto int, what string) (*os.File, error) {
	family := unix.AF_INET
	if t.Dst.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("raw %s socket: %w (transport=%s needs CAP_NET_RAW in the host's network namespace: run linux as root)", what, err, what)
		}
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), what)
	if t.Src.IsValid() || t.SrcPort != 0 {
		src := t.Src
		if !src.IsValid() {
			src = netip.IPv4Unspecified()
			if family == unix.AF_INET6 {
				src = netip.IPv6Unspecified()
			}
		}
		if err := unix.Bind(fd, sockaddr(src, t.SrcPort)); err != nil {
			f.Close()
			return nil, fmt.Errorf("bind %s: %w", src, err)
		}
	}
	if err := unix.Connect(fd, sockaddr(t.Dst, t.DstPort)); err != nil {
		f.Close()
		return nil, fmt.Errorf("connect %s: %w", t.Dst, err)
	}
	return sys.Pollable(f, f.Name())
}

// header is a tunnel header of one direction (encap.GRE, encap.L2TPv3).
type header interface {
	Len() int
	Append(b []byte, seq uint32) []byte
	Decode(p []byte) ([]byte, error)
}

// tunnelParams are a tunnel device's parameters (plan.Eth.Params): the
// headers of both directions.
type tunnelParams[P any] interface {
	*P
	headers() (tx, rx header, ipHdr bool)
}

// wrapTunnel is the Wrap of an IP tunnel whose parameters are a P.
func wrapTunnel[P any, PP tunnelParams[P]](e plan.Eth, f *os.File) (Transport, error) {
	p := PP(new(P))
	if err := params(e, p); err != nil {
		f.Close()
		return nil, err
	}
	tx, rx, ipHdr := p.headers()
	return newTunnel(f, tx, rx, ipHdr), nil
}

// tunnel is the frame transport of an IP tunnel.
type tunnel struct {
	f      *os.File
	tx, rx header
	ipHdr  bool // received packets start with an IPv4 header (raw IPv4 sockets)

	rbuf []byte // ReadFrame's buffer (one reader)

	wmu  sync.Mutex // guards wbuf, seq
	wbuf []byte
	seq  uint32
}

func newTunnel(f *os.File, tx, rx header, ipHdr bool) *tunnel {
	return &tunnel{f: f, tx: tx, rx: rx, ipHdr: ipHdr, rbuf: make([]byte, bufSize)}
}

// ReadFrame implements Transport: the next frame whose header matches;
// others are dropped, as a NIC drops frames not for it.
func (t *tunnel) ReadFrame(b []byte) (int, error) {
	for {
		n, err := t.f.Read(t.rbuf)
		if err != nil {
			return 0, err
		}
		p := t.rbuf[:n]
		if t.ipHdr {
			if p, err = encap.StripIPv4(p); err != nil {
				continue
			}
		}
		frame, err := t.rx.Decode(p)
		if err != nil {
			continue
		}
		return copy(b, frame), nil
	}
}

// WriteFrame implements Transport.
func (t *tunnel) WriteFrame(b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.seq++
	t.wbuf = append(t.tx.Append(t.wbuf[:0], t.seq), b...)
	_, err := t.f.Write(t.wbuf)
	return err
}

// Close implements Transport.
func (t *tunnel) Close() error { return t.f.Close() }

var _ Transport = (*tunnel)(nil)
