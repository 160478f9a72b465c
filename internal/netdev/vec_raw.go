//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

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
		Wrap:  wrapFile,
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

// packetDir says which frames of its interface a packet socket receives.
type packetDir int

const (
	// packetIn: the frames arriving on the interface (raw: the peer's),
	// not those sent through it.
	packetIn packetDir = iota
	// packetOut: only the frames the host sends out of the interface
	// (hybrid: a tap's; the guest's frames, written into the tap, arrive
	// on it and are left out).
	packetOut
)

// Classic BPF's ancillary load of a frame's packet type (linux/filter.h
// SKF_AD_OFF + SKF_AD_PKTTYPE).
const (
	skfAdOff     = 0xfffff000 // -4096
	skfAdPktType = 4
)

// outgoingOnly is a socket filter keeping the frames of packet type
// PACKET_OUTGOING, whole, and dropping the others.
var outgoingOnly = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdOff + skfAdPktType},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.PACKET_OUTGOING},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
}

// openPacketSocket opens transport's AF_PACKET socket on ifname receiving
// the frames dir says. It is made with no protocol and bound (to
// ETH_P_ALL on ifname) last, so that no frame of another interface, or
// of the wrong direction, is queued before its options apply.
func openPacketSocket(transport, ifname string, dir packetDir) (*os.File, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("raw socket: %w (transport=%s needs CAP_NET_RAW in the host's network namespace: run linux as root, or use transport=tap)", err, transport)
		}
		return nil, os.NewSyscallError("socket AF_PACKET", err)
	}
	f := os.NewFile(uintptr(fd), transport+"-"+ifname)
	fail := func(op string, err error) (*os.File, error) {
		f.Close()
		return nil, os.NewSyscallError(op, err)
	}
	switch dir {
	case packetIn:
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fail("setsockopt PACKET_IGNORE_OUTGOING", err)
		}
	case packetOut:
		prog := unix.SockFprog{Len: uint16(len(outgoingOnly)), Filter: &outgoingOnly[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fail("setsockopt SO_ATTACH_FILTER", err)
		}
	}
	// The host's own packets on the interface (veth, bridge, tap) carry
	// partial checksums and may be large segments, and the guest's may
	// too: the vnet header before every frame says which, and the guest's
	// device and the host's kernel finish them (plan.Eth.Vnet).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("setsockopt PACKET_VNET_HDR", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1) // as UML; best effort
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		return fail("bind AF_PACKET "+ifname, err)
	}
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func openVecRaw(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecRawSpec)
	f, err := openPacketSocket("raw", s.Ifname, packetIn)
	if err != nil {
		return nil, fmt.Errorf("vec%d: %s: %w", n, s.Ifname, err)
	}
	o, err := openedVec(h, n, "raw", s.common, f, nil)
	if err != nil {
		return nil, err
	}
	o.kpath = kpathTarget{kpathRaw, s.Ifname}
	runIfup(h, s.common.Ifup, s.Ifname)
	return o, nil
}
