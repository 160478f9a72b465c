//go:build linux

package netdev

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// The kernel data path (docs/linux.md, "Kernel data path"). When linux
// runs as host root, a device whose host side is a host interface (a tap:
// ethN=tuntap, vecN:transport=tap; or any interface: vecN:transport=raw)
// need not have its frames copied through K: P makes a veth pair, one end
// (ethN, the device's MAC and MTU) created directly in K's network
// namespace for the guest, the other (umlkXXXXXXXX) left in the host's
// namespace with no addresses, ARP and IPv6 off, and joins that host end to
// the interface with two eBPF programs attached through tcx links:
//
//   - tap: the host end's ingress (the guest's frames) is redirected to
//     the tap's ingress, where the host receives them as if written to the
//     tap's descriptor; the tap's egress (what the host sends to the tap)
//     is redirected to the host end's egress, which delivers it to the
//     guest. The tap stays open in P, so it keeps its carrier.
//   - raw: the guest's frames leave through the interface (its egress, as
//     an AF_PACKET send does), and a copy of every frame the interface
//     receives goes to the guest (as an AF_PACKET socket sees them; the
//     host's stack still gets the frame). The device's packet socket is
//     kept for a relay and muted while the path is up.
//
// 64 KiB segments and partial checksums cross whole both ways; no byte of
// the device's traffic passes through user space.
//
// What the guest can reach is what it reached through the relay: its
// frames go to the one interface, whatever their addresses, tags or size
// (up to the interface's MTU, which the host end takes), and it receives
// what the interface sends it. The host end never reaches the host's stack
// (every frame arriving on it is redirected, and it has no addresses to
// answer from). Deleting its own end deletes the pair, which stops the
// device; nothing else of the pair is the guest's.
//
// Nothing is left on the host after the machine: the guest's end dies with
// K's namespace and takes the host end with it, and a tcx link detaches its
// program when P, its only holder, closes it or exits (kill -9 included).
// Where anything of this fails (an older kernel without tcx, no CAP_BPF),
// P says so and K relays the device as usual.

// kpathMode is how a device's host interface is joined.
type kpathMode int

const (
	kpathNone kpathMode = iota
	kpathTap            // the host side is a tap: redirect both ways
	kpathRaw            // the host side is an interface seen through a packet socket
)

// kpathTarget is the host interface a device may be joined to in the
// kernel, as its transport's Open found it.
type kpathTarget struct {
	mode   kpathMode
	ifname string
}

// kernelPath is a device's joined kernel data path, held by P.
type kernelPath struct {
	nl      *netlink.Handle // in the host's namespace (where JoinKernel ran)
	hostEnd string          // the host end of the veth pair
	files   []*os.File      // programs and links; closing the links detaches
	muted   *os.File        // raw: the device's packet socket, muted
}

// KernelPathTarget names the host interface the device may be joined to
// in the kernel, or "" when its transport has none (netdev's kpath.go).
func (o *Opened) KernelPathTarget() string {
	if o == nil || o.kpath.mode == kpathNone {
		return ""
	}
	return o.kpath.ifname
}

// KernelPathUp reports whether the device's kernel data path is joined.
func (o *Opened) KernelPathUp() bool { return o != nil && o.joined != nil }

// JoinKernel builds the device's kernel data path (netdev's kpath.go):
// the guest's end is created as the device in the network namespace
// netns (K's), with the device's MAC and MTU. It returns the boot log's
// description of the path. On failure nothing of it is left and the device
// is relayed as before.
func (o *Opened) JoinKernel(netns *os.File) (string, error) {
	if o.kpath.mode == kpathNone {
		return "", errors.New("no host interface to join")
	}
	if o.joined != nil {
		o.LeaveKernel()
	}
	kp, err := joinKernel(o, netns)
	if err != nil {
		return "", fmt.Errorf("%s: kernel data path to %s: %w", o.Eth.Name(), o.kpath.ifname, err)
	}
	o.joined = kp
	how := "tap"
	if o.kpath.mode == kpathRaw {
		how = "interface"
	}
	return fmt.Sprintf("%s: kernel data path to host %s %s (veth %s, tcx redirect); frames do not pass through linux",
		o.Eth.Name(), how, o.kpath.ifname, kp.hostEnd), nil
}

// LeaveKernel takes the device's kernel data path down, if it is up:
// the pair is deleted (the guest's end with it, if K still runs) and the
// programs detached; a muted packet socket receives again.
func (o *Opened) LeaveKernel() {
	if o == nil || o.joined == nil {
		return
	}
	o.joined.close()
	o.joined = nil
}

// close undoes a (partly) joined path.
func (kp *kernelPath) close() {
	if kp.hostEnd != "" {
		if l, err := kp.nl.LinkByName(kp.hostEnd); err == nil {
			kp.nl.LinkDel(l)
		}
		kp.hostEnd = ""
	}
	if kp.nl != nil {
		kp.nl.Close()
		kp.nl = nil
	}
	for i := len(kp.files) - 1; i >= 0; i-- {
		kp.files[i].Close()
	}
	kp.files = nil
	if kp.muted != nil {
		unmuteSocket(kp.muted)
		kp.muted = nil
	}
}

// hostEndPrefix starts the name of every host end (umlk + 8 hex digits).
const hostEndPrefix = "umlk"

// maxLinkMTU is the largest MTU of a veth (ETH_MAX_MTU).
const maxLinkMTU = 65535

func joinKernel(o *Opened, netns *os.File) (kp *kernelPath, err error) {
	// The path's host side lives in the calling thread's namespace (P's,
	// the host's); the handle stays there for the teardown.
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	kp = &kernelPath{nl: nl}
	defer func() {
		if err != nil {
			kp.close()
		}
	}()
	target, err := nl.LinkByName(o.kpath.ifname)
	if err != nil {
		return nil, fmt.Errorf("host interface: %w", err)
	}
	// The guest's end: the device, as K would have made it.
	mtu := o.Eth.MTU
	if mtu == 0 {
		mtu = MTU
	}
	// The host end takes up to the interface's MTU (GSO segments whole):
	// bigger frames from the guest are dropped there, as the interface
	// would not carry them either.
	hostMTU := min(max(target.Attrs().MTU, minVecMTU), maxLinkMTU)
	var rnd [4]byte
	rand.Read(rnd[:])
	name := hostEndPrefix + hex.EncodeToString(rnd[:])
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: name, MTU: hostMTU, TxQLen: -1},
		PeerName:         o.Eth.Name(),
		PeerHardwareAddr: net.HardwareAddr(o.Eth.MAC[:]),
		PeerMTU:          uint32(mtu),
		PeerNamespace:    netlink.NsFd(int(netns.Fd())),
		PeerTxQLen:       -1,
	}
	if err := nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth pair %s/%s: %w", name, o.Eth.Name(), err)
	}
	kp.hostEnd = name
	host, err := nl.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if err := inertHostEnd(nl, host, o.Eth.Name()); err != nil {
		return nil, err
	}
	hostIdx, targetIdx := host.Attrs().Index, target.Attrs().Index
	attach := func(prog []sys.BPFInsn, ifindex int, egress bool) error {
		p, err := sys.LoadSchedCLS("umlkit_kpath", bpfLicense, prog)
		if err != nil {
			return err
		}
		kp.files = append(kp.files, p)
		l, err := sys.AttachTCX(p, ifindex, egress)
		if err != nil {
			return err
		}
		kp.files = append(kp.files, l)
		return nil
	}
	switch o.kpath.mode {
	case kpathTap:
		// guest → the tap's ingress; the tap's egress → the guest.
		if err := attach(redirectProg(targetIdx, true), hostIdx, false); err != nil {
			return nil, err
		}
		if err := attach(redirectProg(hostIdx, false), targetIdx, true); err != nil {
			return nil, err
		}
	case kpathRaw:
		// guest → out of the interface; a copy of what it receives → the guest.
		if err := attach(redirectProg(targetIdx, false), hostIdx, false); err != nil {
			return nil, err
		}
		if err := attach(mirrorProg(hostIdx), targetIdx, false); err != nil {
			return nil, err
		}
		if err := muteSocket(o.File); err != nil {
			return nil, err
		}
		kp.muted = o.File
	}
	// Up last: no frame crosses before both programs are attached.
	if err := nl.LinkSetUp(host); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	return kp, nil
}

// inertHostEnd makes the host end of a pair a plain wire: no ARP, no IPv6
// (so no link-local address, no router or neighbour solicitations), a
// description for whoever lists the host's links. It has no IPv4 address.
func inertHostEnd(nl *netlink.Handle, l netlink.Link, dev string) error {
	name := l.Attrs().Name
	// /proc/sys/net is the namespace of the thread that opens it: the
	// handle's, the caller's.
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1\n"), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) { // no IPv6 on the host at all is fine
		return fmt.Errorf("disable IPv6 on %s: %w", name, err)
	}
	if err := nl.LinkSetARPOff(l); err != nil {
		return fmt.Errorf("set ARP off on %s: %w", name, err)
	}
	nl.LinkSetAlias(l, "umlkit kernel data path of "+dev) // a label only
	return nil
}

// bpfLicense is the programs' license string (they call no GPL-only
// helper).
const bpfLicense = "MIT"

// eBPF registers.
const (
	r0 = iota
	r1
	r2
	r3
)

// redirectProg is a tcx program that hands every frame to interface
// ifindex: to its ingress (received there) or its egress (sent out of it).
func redirectProg(ifindex int, ingress bool) []sys.BPFInsn {
	var flags int32
	if ingress {
		flags = unix.BPF_F_INGRESS
	}
	return []sys.BPFInsn{
		sys.BPFMovImm(r1, int32(ifindex)),
		sys.BPFMovImm(r2, flags),
		sys.BPFCall(sys.BPFFuncRedirect), // r0 = TC_ACT_REDIRECT (TCX_REDIRECT)
		sys.BPFExit(),
	}
}

// mirrorProg is a tcx program that sends a copy of every frame out of
// interface ifindex and lets the frame go on.
func mirrorProg(ifindex int) []sys.BPFInsn {
	return []sys.BPFInsn{
		// r1 is the frame (the program's context).
		sys.BPFMovImm(r2, int32(ifindex)),
		sys.BPFMovImm(r3, 0),
		sys.BPFCall(sys.BPFFuncCloneRedirect),
		sys.BPFMovImm(r0, sys.TCXNext),
		sys.BPFExit(),
	}
}

// dropAll is a classic BPF socket filter that keeps no frame.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// muteSocket makes packet socket f receive nothing, and drops what it
// had queued, while the kernel data path carries its device.
func muteSocket(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
		if serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); serr != nil {
			serr = os.NewSyscallError("setsockopt SO_ATTACH_FILTER", serr)
			return
		}
		var b [64]byte // room for the vnet header, or the read fails (EINVAL)
		for {
			if _, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil && err != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// unmuteSocket undoes muteSocket.
func unmuteSocket(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		})
	}
}

// KernelDev is a device of the kernel data path on K's side: the guest's
// veth end P created in K's namespace.
type KernelDev struct {
	name  string
	index int
}

// AdoptKernelDev takes the device name P created in the calling thread's
// network namespace for the kernel data path; it fails when there is
// none (P could not build the path: K relays the device instead).
func AdoptKernelDev(name string) (*KernelDev, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if l.Type() != "veth" {
		return nil, fmt.Errorf("%s is a %s, not the kernel data path's veth", name, l.Type())
	}
	return &KernelDev{name: name, index: l.Attrs().Index}, nil
}

// OffloadsOff makes the device send what a TAP without offloads would
// (plan.Eth.Offload false): complete checksums and MTU-sized frames, so a
// peer that takes only those (UML's raw or tap without gro=1 at the far
// end of a veth) gets no large segment. Without transmit checksumming the
// kernel also drops scatter-gather and TSO from the device: the guest's
// stack segments and checksums before a frame leaves it.
func (d *KernelDev) OffloadsOff() error {
	if err := sys.EthtoolSet(d.name, unix.ETHTOOL_STXCSUM, 0); err != nil {
		return fmt.Errorf("turn transmit offloads off: %w", err)
	}
	return nil
}

// Stop deletes the device (and with it the pair) if it still exists.
func (d *KernelDev) Stop() error {
	// By index: the guest may have renamed it.
	l, err := netlink.LinkByIndex(d.index)
	if err != nil || l.Type() != "veth" {
		return nil // gone already (the guest deleted it)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", d.name, err)
	}
	return nil
}
