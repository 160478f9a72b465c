//go:build linux

package netdev

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/sys"
	"golang.org/x/sys/unix"
)

// Datagram is a transport over a datagram socket that sends every frame to
// one address (mcast: the group) and receives from anyone.
type Datagram struct {
	f   *os.File
	rc  syscall.RawConn
	to  unix.Sockaddr
	rmm sys.Mmsg // ReadFrames' batch (the reader's)
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

// NewDatagram wraps a UDP socket (owned from now on) that sends every frame
// to addr:port: mcast (the group) and ucast (the peer).
func NewDatagram(f *os.File, addr netip.Addr, port int) (*Datagram, error) {
	return NewMcast(f, addr, port)
}

// datagramParams is where K sends the frames of mcast and ucast devices.
type datagramParams struct {
	Group string `json:"group"` // mcast: the group; ucast: the peer
	Port  int    `json:"port"`
}

func wrapDatagram(e plan.Eth, f *os.File) (Transport, error) {
	var p datagramParams
	if err := params(e, &p); err != nil {
		f.Close()
		return nil, err
	}
	addr, err := netip.ParseAddr(p.Group)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eth%d: %w", e.Unit, err)
	}
	return NewDatagram(f, addr, p.Port)
}
