//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/encap"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/sys"
)

// vecN:transport=raw,ifname=NAME: an AF_PACKET socket on a host
// interface (a veth end, a bridge port): every frame the interface
// receives goes to the guest, every frame of the guest leaves through it
// (net.md §6). P opens the socket in the host's namespace, which needs
// CAP_NET_RAW there; it does not see the frames it sends itself.

func init() {
	RegisterVector(&Driver{
		Name:  "raw",
		Help:  "vecN:transport=raw,ifname=<host interface>[,mac=<mac>][,mtu=<n>] (needs CAP_NET_RAW)",
		Parse: parseVecRaw,
		Open:  openVecRaw,
		Wrap:  wrapRaw,
	})
}

type vecRawSpec struct {
	vecSpec
	Ifname string
}

func parseVecRaw(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	if s.args["ifname"] == "" {
		return nil, errors.New("transport=raw needs ifname=")
	}
	return vecRawSpec{vecSpec: s, Ifname: s.args["ifname"]}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacketSocket opens an AF_PACKET socket bound to ifname that does not
// receive what is sent through it.
func openPacketSocket(ifname string) (*os.File, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("raw socket: %w (transport=raw needs CAP_NET_RAW in the host's network namespace: run linux as root, or use transport=tap)", err)
		}
		return nil, os.NewSyscallError("socket AF_PACKET", err)
	}
	f := os.NewFile(uintptr(fd), "raw-"+ifname)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		f.Close()
		return nil, os.NewSyscallError("bind AF_PACKET "+ifname, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		f.Close()
		return nil, os.NewSyscallError("setsockopt PACKET_IGNORE_OUTGOING", err)
	}
	// The host's own packets on the interface (veth, bridge) carry
	// partial checksums and may be large segments: the vnet header says
	// which (rawVnet completes them).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		f.Close()
		return nil, os.NewSyscallError("setsockopt PACKET_VNET_HDR", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1) // as UML; best effort
	return sys.Pollable(f, f.Name())
}

func openVecRaw(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecRawSpec)
	f, err := openPacketSocket(s.Ifname)
	if err != nil {
		return nil, fmt.Errorf("vec%d: %s: %w", n, s.Ifname, err)
	}
	o, err := openedVec(h, n, "raw", s.common, f, nil)
	if err != nil {
		return nil, err
	}
	runIfup(h, s.common.Ifup, s.Ifname)
	return o, nil
}

func wrapRaw(_ plan.Eth, f *os.File) (Transport, error) {
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rawVnet{f: p, rbuf: make([]byte, encap.VnetHdrLen+bufSize)}, nil
}

// rawVnet is the frame transport of a packet socket with PACKET_VNET_HDR:
// each frame comes after a virtio_net_hdr. A received frame's partial
// checksum is completed in software (the guest's device takes no vnet
// header); a large segment (GSO) goes to the guest whole, which takes it
// as one IP packet. Frames sent carry an empty header (no offloads).
type rawVnet struct {
	f    *os.File
	rbuf []byte // ReadFrame's (one reader)

	wmu  sync.Mutex // guards wbuf
	wbuf []byte
}

// ReadFrame implements Transport.
func (r *rawVnet) ReadFrame(b []byte) (int, error) {
	for {
		n, err := r.f.Read(r.rbuf)
		if err != nil {
			return 0, err
		}
		h, err := encap.DecodeVnetHdr(r.rbuf[:n])
		if err != nil {
			continue
		}
		frame := r.rbuf[encap.VnetHdrLen:n]
		if !encap.CompleteChecksum(frame, h) {
			continue
		}
		return copy(b, frame), nil
	}
}

// WriteFrame implements Transport.
func (r *rawVnet) WriteFrame(b []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.wbuf = append(append(r.wbuf[:0], make([]byte, encap.VnetHdrLen)...), b...)
	_, err := r.f.Write(r.wbuf)
	return err
}

// Close implements Transport.
func (r *rawVnet) Close() error { return r.f.Close() }
