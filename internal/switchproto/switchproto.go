// Package switchproto is the wire format of uml_switch's daemon transport:
// the control request a client writes on the SOCK_STREAM control socket
// (versions 0, 1 and 3, and vde_switch's v3 variant carrying a port
// description), the 110-byte sockaddr_un reply, the address helpers used to
// identify ports, and the data-socket frame size rules.
//
// Pure: no I/O, no syscalls, builds on every GOOS. All integers are
// little-endian (host order of amd64, where the format was verified; the C
// tools use host order). Spec: shared/spec/switch.md §1–§3 and §6.
package switchproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Sizes and offsets (amd64 layout of the C structs).
const (
	Magic uint32 = 0xFEEDFACE // request magic, bytes CE FA ED FE

	PathSize     = 108 // sun_path
	SockaddrSize = 110 // sa_family (2) + sun_path
	AFUnix       = 1   // sa_family of every address in this protocol

	// v3: {u32 magic; u32 version; u32 type; sockaddr_un sock} + 2 bytes of
	// struct padding (UML) or a NUL-terminated description (vde clients).
	offV3Version  = 4
	offV3Type     = 8
	offV3Sock     = 12
	RequestV3Min  = offV3Sock + SockaddrSize // 122: everything but the tail
	RequestV3Size = 124                      // what UML 6.1 writes

	// v1: {u32 magic; u32 type; u8 mac[6]; sockaddr_un name}.
	offV1Type     = 4
	offV1MAC      = 8
	offV1Sock     = 14
	RequestV1Size = offV1Sock + SockaddrSize // 124

	// v0: {u32 type; u8 mac[6]; sockaddr_un name} (no magic).
	offV0Type     = 0
	offV0MAC      = 4
	offV0Sock     = 10
	RequestV0Size = offV0Sock + SockaddrSize // 120

	// MaxRequestSize bounds one control read: a v3 request with the
	// longest tail this package keeps.
	MaxRequestSize = RequestV3Min + MaxTail
	// MaxTail bounds the bytes kept after a v3 sockaddr (vde's
	// description field is 128 bytes).
	MaxTail = 256

	// ReplySize is the reply: the switch's data socket sockaddr_un.
	ReplySize = SockaddrSize

	// TypeNewControl is REQ_NEW_CONTROL, the only request uml_switch serves.
	TypeNewControl = 0

	// RealMaxFrame is what the real uml_switch reads per datagram (14-byte
	// header + 1500); longer datagrams are truncated by it.
	RealMaxFrame = 1514
	// MaxFrame is the largest datagram umlkit's switch forwards unchanged.
	MaxFrame = 65535
	// MinFrame is the smallest datagram that holds an Ethernet header.
	MinFrame = 14

	// VnetHdrLen is the virtio_net_hdr before every frame on a vnet port.
	VnetHdrLen = 10
	// MaxVnetDatagram is the largest datagram of a vnet port: the header
	// and a 64 KiB IP packet with its Ethernet header and VLAN tags.
	MaxVnetDatagram = VnetHdrLen + 65536 + 256
)

// The vnet extension (umlkit's own, docs/uml_switch.md "Large frames"):
// a client and a switch that both mark their abstract data address with
// vnetMagic after the 12-byte {0, pad[3], pid, usec} blob exchange every
// frame as one datagram of a virtio_net_hdr (VnetHdrLen bytes, the legacy
// layout of a TAP with IFF_VNET_HDR) followed by the frame, which may be
// a 64 KiB TCP/UDP segment with a partial checksum. A peer that does not
// mark its address (UML, uml_switch, vde) never sees the header: real UML
// fills those bytes at random and uml_switch leaves them zero, and both
// use the address only to send to it.
var vnetMagic = [...]byte{'u', 'm', 'l', 'k', 'i', 't', '-', 'v', 'n', 'e', 't', '-', '1', 0}

// offVnetMagic is where vnetMagic sits in a Sockaddr: after the family
// and the blob.
const offVnetMagic = 2 + 12

// HasVnet reports whether a is an abstract address marked for the vnet
// extension.
func (a *Sockaddr) HasVnet() bool {
	return a.IsAbstract() && [len(vnetMagic)]byte(a[offVnetMagic:offVnetMagic+len(vnetMagic)]) == vnetMagic
}

// SetVnet marks the abstract address a for the vnet extension.
func (a *Sockaddr) SetVnet() { copy(a[offVnetMagic:], vnetMagic[:]) }

// Errors returned by the decoders.
var (
	ErrShortRequest = errors.New("short control request")
	ErrShortReply   = errors.New("control reply is not 110 bytes")
	ErrBadPath      = errors.New("bad unix socket path")
)

// VersionError is returned for a request with the magic and an unsupported
// version (2, or anything above 3).
type VersionError struct{ Version uint32 }

func (e *VersionError) Error() string {
	return "unsupported control protocol version " + strconv.FormatUint(uint64(e.Version), 10)
}

// Sockaddr is a raw 110-byte struct sockaddr_un: 2-byte family (host order)
// and 108-byte sun_path. An abstract address has sun_path[0] == 0; its name
// is every following byte, NULs included.
type Sockaddr [SockaddrSize]byte

// NamedSockaddr returns the AF_UNIX address of a filesystem path.
func NamedSockaddr(path string) (Sockaddr, error) {
	var a Sockaddr
	if path == "" || len(path) > PathSize {
		return a, fmt.Errorf("%w %q: length %d not in 1..%d", ErrBadPath, path, len(path), PathSize)
	}
	for i := 0; i < len(path); i++ {
		if path[i] == 0 {
			return a, fmt.Errorf("%w %q: contains NUL", ErrBadPath, path)
		}
	}
	binary.LittleEndian.PutUint16(a[:], AFUnix)
	copy(a[2:], path)
	return a, nil
}

// AbstractSockaddr returns the abstract AF_UNIX address whose name (after
// the leading NUL) is name, zero-padded to the full length.
func AbstractSockaddr(name []byte) (Sockaddr, error) {
	var a Sockaddr
	if len(name) > PathSize-1 {
		return a, fmt.Errorf("%w: abstract name of %d bytes (max %d)", ErrBadPath, len(name), PathSize-1)
	}
	binary.LittleEndian.PutUint16(a[:], AFUnix)
	copy(a[3:], name)
	return a, nil
}

// SwitchSockaddr returns the abstract data address uml_switch binds: sun_path
// starts with {u8 0; u8 pad[3]; s32 pid; s32 usec} and is zero after it. UML
// kernels build their own data address the same way (with random bytes after
// the blob instead of zeros).
func SwitchSockaddr(pid, usec int32) Sockaddr {
	var a Sockaddr
	binary.LittleEndian.PutUint16(a[:], AFUnix)
	binary.LittleEndian.PutUint32(a[2+4:], uint32(pid))
	binary.LittleEndian.PutUint32(a[2+8:], uint32(usec))
	return a
}

// Family returns sa_family.
func (a *Sockaddr) Family() uint16 { return binary.LittleEndian.Uint16(a[:2]) }

// IsAbstract reports whether the address is in the abstract namespace.
func (a *Sockaddr) IsAbstract() bool { return a[2] == 0 }

// Path returns a named address's path (sun_path up to the first NUL), or ""
// for an abstract one.
func (a *Sockaddr) Path() string {
	if a.IsAbstract() {
		return ""
	}
	p := a[2:]
	for i, c := range p {
		if c == 0 {
			return string(p[:i])
		}
	}
	return string(p)
}

// String returns the path of a named address, or "@" and the quoted
// abstract name with trailing NULs trimmed.
func (a *Sockaddr) String() string {
	if !a.IsAbstract() {
		return a.Path()
	}
	n := a[3:]
	end := len(n)
	for end > 0 && n[end-1] == 0 {
		end--
	}
	q := strconv.Quote(string(n[:end]))
	return "@" + q[1:len(q)-1]
}

// Canonical returns raw (the first namelen bytes of an address, as recvfrom
// or a request gives it) normalised for comparison: bytes past namelen are
// zero, and for a named address everything after the path's NUL is zero.
// Two addresses name the same socket iff their canonical forms are equal
// (except for abstract names that differ only in trailing NULs).
func Canonical(raw []byte) Sockaddr {
	var a Sockaddr
	copy(a[:], raw)
	if len(raw) > 2 && a[2] != 0 {
		for i := 2; i < SockaddrSize; i++ {
			if a[i] == 0 {
				clear(a[i:])
				break
			}
		}
	}
	return a
}

// Request is a decoded control request.
type Request struct {
	// Version is 0, 1 or 3 (2 and >3 are VersionErrors).
	Version int
	// Type is the request type; uml_switch serves only TypeNewControl.
	Type uint32
	// MAC is the v0/v1 MAC field (ignored by the switch).
	MAC [6]byte
	// Addr is the client's data socket address, exactly as sent.
	Addr Sockaddr
	// Tail holds a v3 request's bytes after the sockaddr (at most MaxTail):
	// UML's 2 padding bytes or a vde client's NUL-terminated description.
	Tail []byte
}

// Description returns a v3 request's port description (vde_switch
// extension): Tail up to its first NUL. UML's uninitialised padding bytes may
// show up here as one or two junk bytes.
func (r *Request) Description() string {
	for i, c := range r.Tail {
		if c == 0 {
			return string(r.Tail[:i])
		}
	}
	return string(r.Tail)
}

// UnmarshalBinary decodes one control request as uml_switch classifies it:
// with the magic, version 3 is v3, version 2 or >3 is a *VersionError, and
// 0 or 1 is a v1 request whose type is that word; without the magic the
// request is v0. Extra bytes after a v0/v1 request are ignored.
func (r *Request) UnmarshalBinary(b []byte) error {
	if len(b) < 4 {
		return fmt.Errorf("%w: %d bytes", ErrShortRequest, len(b))
	}
	*r = Request{}
	if binary.LittleEndian.Uint32(b) != Magic {
		if len(b) < RequestV0Size {
			return fmt.Errorf("%w: %d bytes for a version 0 request (want %d)", ErrShortRequest, len(b), RequestV0Size)
		}
		r.Version = 0
		r.Type = binary.LittleEndian.Uint32(b[offV0Type:])
		copy(r.MAC[:], b[offV0MAC:])
		copy(r.Addr[:], b[offV0Sock:])
		return nil
	}
	if len(b) < 8 {
		return fmt.Errorf("%w: %d bytes", ErrShortRequest, len(b))
	}
	v := binary.LittleEndian.Uint32(b[offV3Version:])
	switch {
	case v == 3:
		if len(b) < RequestV3Min {
			return fmt.Errorf("%w: %d bytes for a version 3 request (want %d)", ErrShortRequest, len(b), RequestV3Size)
		}
		r.Version = 3
		r.Type = binary.LittleEndian.Uint32(b[offV3Type:])
		copy(r.Addr[:], b[offV3Sock:])
		tail := b[RequestV3Min:]
		if len(tail) > MaxTail {
			tail = tail[:MaxTail]
		}
		if len(tail) > 0 {
			r.Tail = append([]byte(nil), tail...)
		}
		return nil
	case v == 2 || v > 3:
		return &VersionError{Version: v}
	}
	if len(b) < RequestV1Size {
		return fmt.Errorf("%w: %d bytes for a version 1 request (want %d)", ErrShortRequest, len(b), RequestV1Size)
	}
	r.Version = 1
	r.Type = v
	copy(r.MAC[:], b[offV1MAC:])
	copy(r.Addr[:], b[offV1Sock:])
	return nil
}

// MarshalBinary encodes r in its version's layout.
func (r *Request) MarshalBinary() ([]byte, error) { return r.AppendBinary(nil) }

// AppendBinary appends r's encoding to b. A v3 request without Tail gets
// UML's two zero padding bytes (124 bytes in all).
func (r *Request) AppendBinary(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	switch r.Version {
	case 0:
		b = le.AppendUint32(b, r.Type)
		b = append(b, r.MAC[:]...)
		b = append(b, r.Addr[:]...)
	case 1:
		b = le.AppendUint32(b, Magic)
		b = le.AppendUint32(b, r.Type)
		b = append(b, r.MAC[:]...)
		b = append(b, r.Addr[:]...)
	case 3:
		if len(r.Tail) > MaxTail {
			return b, fmt.Errorf("version 3 request tail of %d bytes (max %d)", len(r.Tail), MaxTail)
		}
		b = le.AppendUint32(b, Magic)
		b = le.AppendUint32(b, 3)
		b = le.AppendUint32(b, r.Type)
		b = append(b, r.Addr[:]...)
		if r.Tail == nil {
			b = append(b, 0, 0)
		} else {
			b = append(b, r.Tail...)
		}
	default:
		return b, fmt.Errorf("cannot encode a version %d control request", r.Version)
	}
	return b, nil
}

// ParseReply decodes the switch's reply: exactly one 110-byte sockaddr_un
// (the UML kernel fails on anything else).
func ParseReply(b []byte) (Sockaddr, error) {
	var a Sockaddr
	if len(b) != ReplySize {
		return a, fmt.Errorf("%w: got %d", ErrShortReply, len(b))
	}
	copy(a[:], b)
	return a, nil
}

// AttachTap is the payload of the datagram with which a vnet client hands
// the switch its guest's TAP device (SCM_RIGHTS, one descriptor: a TAP with
// IFF_NO_PI and IFF_VNET_HDR); the switch answers Attached on the data
// socket and from then on reads the port's frames from the TAP and writes
// the port's frames into it.
const (
	AttachTap = "umlkit-attach-tap-1"
	Attached  = "umlkit-attached-1"
)
