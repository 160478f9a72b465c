//go:build linux

// Package tuntap creates, attaches to, persists, hands over and deletes Linux
// TUN/TAP interfaces through the /dev/net/tun clone device, using ioctls from
// golang.org/x/sys (no cgo, no unsafe). It is shared by tunctl, uml_net,
// uml_switch (-tap uplink) and linux (in-namespace taps).
//
// Spec: shared/spec/net.md §4.2 (uml_net tuntap up) and §5 (tunctl ioctls).
//
// # API
//
//	dev, err := tuntap.Open(tuntap.Config{Name: "tap0"})      // TAP, IFF_NO_PI
//	dev, err := tuntap.Open(tuntap.Config{Mode: tuntap.TUN})  // kernel picks tunN
//	dev.Name()                   // the interface name the kernel chose
//	dev.File()                   // *os.File joined to the runtime poller:
//	                             // Read/Write one frame per call, Close and
//	                             // SetDeadline unblock readers
//	dev.SetPersist(true)         // survive Close (tunctl)
//	dev.SetOwner(uid); dev.SetGroup(gid)
//	dev.Close()
//	tuntap.Delete("tap0", "")    // attach + TUNSETPERSIST 0 (tunctl -d)
//	tuntap.List()                // TUN/TAP interfaces of this netns (netlink)
//	tuntap.OpenInNetNS("/run/netns/x", cfg) // create it in another netns
//
// Frames are raw Ethernet (TAP) or raw IP (TUN) unless Config.PacketInfo asks
// for the 4-byte packet-information header. The interface lives in the network
// namespace of the thread that calls Open; OpenInNetNS creates it in another
// one (the fd keeps working from any namespace).
//
// Passing the device to another process: fdpass.Send(conn, data, dev.File())
// works; note that (*os.File).Fd puts the descriptor in blocking mode, which
// is what the real uml_net hands to UML (UML sets O_NONBLOCK|O_ASYNC itself).
// Do not use dev.File() for I/O in this process after that.
package tuntap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// DefaultCloneDevice is the TUN/TAP clone device.
const DefaultCloneDevice = "/dev/net/tun"

// Mode selects a layer-2 (TAP) or layer-3 (TUN) interface.
type Mode int

const (
	// TAP carries Ethernet frames (IFF_TAP). The zero value.
	TAP Mode = iota
	// TUN carries IP packets (IFF_TUN).
	TUN
)

func (m Mode) String() string {
	if m == TUN {
		return "tun"
	}
	return "tap"
}

// Config describes the interface to create or attach to.
type Config struct {
	// Name is the interface name; empty lets the kernel pick tapN/tunN. A
	// name containing "%d" is a template the kernel completes.
	Name string
	// Mode is TAP (default) or TUN.
	Mode Mode
	// PacketInfo keeps the 4-byte flags/proto header (clears IFF_NO_PI).
	PacketInfo bool
	// VnetHdr sets IFF_VNET_HDR (virtio_net_hdr before every frame).
	VnetHdr bool
	// CloneDevice is the clone device path (default /dev/net/tun).
	CloneDevice string
}

// Flags returns the TUNSETIFF ifr_flags for c.
func (c Config) Flags() uint16 {
	var f uint16 = unix.IFF_TAP
	if c.Mode == TUN {
		f = unix.IFF_TUN
	}
	if !c.PacketInfo {
		f |= unix.IFF_NO_PI
	}
	if c.VnetHdr {
		f |= unix.IFF_VNET_HDR
	}
	return f
}

// ErrBadName is returned for interface names the kernel would refuse or
// that are unsafe to pass around (too long, '/', whitespace, control bytes).
var ErrBadName = errors.New("invalid interface name")

// CheckName validates an interface name the way the kernel's
// dev_valid_name does: at most 15 bytes, not "." or "..", no '/', ':' or
// (kernel ctype) whitespace. The empty name is valid (kernel-chosen).
func CheckName(name string) error {
	if name == "" {
		return nil
	}
	if len(name) >= unix.IFNAMSIZ || name == "." || name == ".." {
		return fmt.Errorf("%w %q", ErrBadName, name)
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case 0, '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
			return fmt.Errorf("%w %q", ErrBadName, name)
		}
	}
	return nil
}

// Device is an open TUN/TAP interface. Close detaches from it; a
// non-persistent interface disappears with its last descriptor.
type Device struct {
	f    *os.File
	name string
	mode Mode
}

// Open creates (or attaches to an existing) TUN/TAP interface. The returned
// file is non-blocking and joined to the runtime poller.
//
// Errors are *os.PathError for the clone device and *os.SyscallError
// ("ioctl TUNSETIFF") for the attach, so callers can print the errno the
// way the C tools do.
func Open(c Config) (*Device, error) {
	if err := CheckName(c.Name); err != nil {
		return nil, err
	}
	clone := c.CloneDevice
	if clone == "" {
		clone = DefaultCloneDevice
	}
	fd, err := unix.Open(clone, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: clone, Err: err}
	}
	name, err := setIff(fd, c.Name, c.Flags())
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return &Device{f: os.NewFile(uintptr(fd), clone+":"+name), name: name, mode: c.Mode}, nil
}

func setIff(fd int, name string, flags uint16) (string, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return "", fmt.Errorf("%w %q", ErrBadName, name)
	}
	ifr.SetUint16(flags)
	if err := ioctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return "", os.NewSyscallError("ioctl TUNSETIFF", err)
	}
	return ifr.Name(), nil
}

func ioctlIfreq(fd int, req uint, ifr *unix.Ifreq) error {
	for {
		err := unix.IoctlIfreq(fd, req, ifr)
		if err != unix.EINTR {
			return err
		}
	}
}

func (d *Device) ioctlInt(op string, req uint, v int) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ierr = unix.IoctlSetInt(int(fd), req, v)
			if ierr != unix.EINTR {
				break
			}
		}
	}); err != nil {
		return err
	}
	if ierr != nil {
		return os.NewSyscallError(op, ierr)
	}
	return nil
}

// Name returns the interface name (as completed by the kernel).
func (d *Device) Name() string { return d.name }

// Mode returns TAP or TUN.
func (d *Device) Mode() Mode { return d.mode }

// File returns the poller-backed descriptor: one frame per Read/Write.
func (d *Device) File() *os.File { return d.f }

// Read reads one frame.
func (d *Device) Read(b []byte) (int, error) { return d.f.Read(b) }

// Write writes one frame.
func (d *Device) Write(b []byte) (int, error) { return d.f.Write(b) }

// Close releases the descriptor; it is safe to call more than once.
func (d *Device) Close() error {
	err := d.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// SetPersist sets or clears TUNSETPERSIST: a persistent interface outlives
// its descriptors.
func (d *Device) SetPersist(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return d.ioctlInt("ioctl TUNSETPERSIST", unix.TUNSETPERSIST, v)
}

// SetOwner restricts attaching to uid (TUNSETOWNER; -1 clears).
func (d *Device) SetOwner(uid int) error {
	return d.ioctlInt("ioctl TUNSETOWNER", unix.TUNSETOWNER, uid)
}

// SetGroup restricts attaching to members of gid (TUNSETGROUP; -1 clears).
func (d *Device) SetGroup(gid int) error {
	return d.ioctlInt("ioctl TUNSETGROUP", unix.TUNSETGROUP, gid)
}

// Delete attaches to the TAP interface name through clone (default
// /dev/net/tun) and clears its persistence, so it disappears once the last
// descriptor closes. Like tunctl -d, a name that did not exist is created
// and dropped again without error.
func Delete(name, clone string) error {
	d, err := Open(Config{Name: name, CloneDevice: clone})
	if err != nil {
		return err
	}
	defer d.Close()
	return d.SetPersist(false)
}

// Info describes one TUN/TAP interface as netlink reports it.
type Info struct {
	Name       string `json:"name"`
	Mode       string `json:"mode"`       // "tap" or "tun"
	Flags      uint16 `json:"flags"`      // IFF_* as in sysfs tun_flags
	Owner      int    `json:"owner"`      // -1: none
	Group      int    `json:"group"`      // -1: none
	PacketInfo bool   `json:"packetInfo"` // !IFF_NO_PI
	Persistent bool   `json:"persistent"` // IFF_PERSIST
}

// List returns the TUN/TAP interfaces of the calling thread's network
// namespace, in kernel order, from an RTM_GETLINK dump (IFLA_TUN_*
// attributes; owner/group -1 when unset).
func List() ([]Info, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []Info
	for _, m := range msgs {
		if in, ok := parseLink(m); ok {
			out = append(out, in)
		}
	}
	return out, nil
}

func parseLink(m []byte) (Info, bool) {
	if len(m) < unix.SizeofIfInfomsg {
		return Info{}, false
	}
	attrs, err := parseAttrs(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return Info{}, false
	}
	in := Info{Owner: -1, Group: -1}
	isTun := false
	for _, a := range attrs {
		switch a.typ {
		case unix.IFLA_IFNAME:
			in.Name = cString(a.value)
		case unix.IFLA_LINKINFO:
			info, err := parseAttrs(a.value)
			if err != nil {
				return Info{}, false
			}
			for _, i := range info {
				switch i.typ {
				case nl.IFLA_INFO_KIND:
					isTun = cString(i.value) == "tun"
				case nl.IFLA_INFO_DATA:
					data, err := parseAttrs(i.value)
					if err != nil {
						return Info{}, false
					}
					parseTunData(&in, data)
				}
			}
		}
	}
	in.Mode = "tun"
	if in.Flags&unix.IFF_TAP != 0 {
		in.Mode = "tap"
	}
	in.PacketInfo = in.Flags&unix.IFF_NO_PI == 0
	in.Persistent = in.Flags&unix.IFF_PERSIST != 0
	return in, isTun
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// attr is one netlink attribute.
type attr struct {
	typ   uint16
	value []byte
}

// parseAttrs splits a netlink attribute stream, checking every length (the
// kernel's own messages are well formed; this keeps malformed ones from
// panicking).
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, unix.EINVAL
		}
		out = append(out, attr{typ, b[unix.SizeofRtAttr:l]})
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return out, nil
}

func parseTunData(in *Info, data []attr) {
	for _, d := range data {
		if len(d.value) == 0 {
			continue
		}
		switch d.typ {
		case nl.IFLA_TUN_OWNER:
			if len(d.value) >= 4 {
				in.Owner = int(int32(binary.NativeEndian.Uint32(d.value)))
			}
		case nl.IFLA_TUN_GROUP:
			if len(d.value) >= 4 {
				in.Group = int(int32(binary.NativeEndian.Uint32(d.value)))
			}
		case nl.IFLA_TUN_TYPE:
			in.Flags |= uint16(d.value[0])
		case nl.IFLA_TUN_PI:
			if d.value[0] == 0 {
				in.Flags |= unix.IFF_NO_PI
			}
		case nl.IFLA_TUN_VNET_HDR:
			if d.value[0] != 0 {
				in.Flags |= unix.IFF_VNET_HDR
			}
		case nl.IFLA_TUN_PERSIST:
			if d.value[0] != 0 {
				in.Flags |= unix.IFF_PERSIST
			}
		case nl.IFLA_TUN_MULTI_QUEUE:
			if d.value[0] != 0 {
				in.Flags |= unix.IFF_MULTI_QUEUE
			}
		}
	}
}

// Offloads a device with IFF_VNET_HDR may take (TUNSETOFFLOAD): frames
// with partial checksums, and TCP segments up to 64 KiB.
const (
	OffloadCsum = unix.TUN_F_CSUM
	OffloadTSO4 = unix.TUN_F_TSO4
	OffloadTSO6 = unix.TUN_F_TSO6
)

// SetOffload sets the offloads the reader of the device accepts
// (TUNSETOFFLOAD; the device needs IFF_VNET_HDR).
func (d *Device) SetOffload(flags int) error {
	return d.ioctlInt("ioctl TUNSETOFFLOAD", unix.TUNSETOFFLOAD, flags)
}
