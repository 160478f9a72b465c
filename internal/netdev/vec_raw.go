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
	// partial checksums and may be large segments, and the guest's may
	// too: the vnet header before every frame says which, and the guest's
	// device and the host's kernel finish them (plan.Eth.Vnet).
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
