// Package ether holds the pure Ethernet helpers shared by uml_switch and the
// kernel: the MAC address type with its text form, the address-class tests
// (broadcast, multicast, locally administered) and the 2.4-era UML
// fe:fd:<ip> address derivation, plus offsets into an Ethernet II header.
//
// No I/O, builds on every GOOS. Spec: shared/spec/net.md §1 (MAC rules) and
// shared/spec/switch.md §3 (frames).
package ether

import (
	"errors"
	"net/netip"
)

// Ethernet II header layout.
const (
	AddrLen   = 6    // bytes in a MAC address
	HeaderLen = 14   // destination, source, EtherType
	OffDst    = 0    // destination MAC
	OffSrc    = 6    // source MAC
	OffType   = 12   // EtherType, big-endian
	MaxFrame  = 1514 // untagged frame with a 1500-byte payload, no FCS
)

// MAC is an Ethernet address. The zero value is 00:00:00:00:00:00.
type MAC [AddrLen]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ErrBadMAC is returned by ParseMAC for text that is not six colon-separated
// hex bytes.
var ErrBadMAC = errors.New("not an ethernet address")

// ErrShortFrame is returned by Dst/Src-style helpers given fewer than
// HeaderLen bytes.
var ErrShortFrame = errors.New("frame shorter than an ethernet header")

// ParseMAC parses "xx:xx:xx:xx:xx:xx": six groups of one or two hex digits
// (either case) separated by ':'.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	i := 0
	for g := 0; g < AddrLen; g++ {
		if g > 0 {
			if i >= len(s) || s[i] != ':' {
				return MAC{}, ErrBadMAC
			}
			i++
		}
		var v byte
		n := 0
		for n < 2 && i < len(s) {
			d, ok := unhex(s[i])
			if !ok {
				break
			}
			v = v<<4 | d
			i++
			n++
		}
		if n == 0 {
			return MAC{}, ErrBadMAC
		}
		m[g] = v
	}
	if i != len(s) {
		return MAC{}, ErrBadMAC
	}
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const hexDigits = "0123456789abcdef"

// AppendText appends the lower-case "xx:xx:xx:xx:xx:xx" form to b.
func (m MAC) AppendText(b []byte) ([]byte, error) { return m.Append(b), nil }

// Append appends the lower-case "xx:xx:xx:xx:xx:xx" form to b (no allocation
// when b has room).
func (m MAC) Append(b []byte) []byte {
	for i, v := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[v>>4], hexDigits[v&0xf])
	}
	return b
}

// String returns the lower-case "xx:xx:xx:xx:xx:xx" form.
func (m MAC) String() string { return string(m.Append(make([]byte, 0, 17))) }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return m.Append(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMAC.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// IsMulticast reports whether the group bit (bit 0 of byte 0) is set;
// broadcast is multicast too.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsLocal reports whether the locally-administered bit (bit 1 of byte 0) is
// set.
func (m MAC) IsLocal() bool { return m[0]&2 != 0 }

// IsValidUnicast reports whether m may be assigned to an interface: not
// multicast and not all-zero (the kernel's is_valid_ether_addr).
func (m MAC) IsValidUnicast() bool { return !m.IsMulticast() && !m.IsZero() }

// FromIPv4 returns the UML-style address fe:fd:a:b:c:d for the IPv4 address
// a.b.c.d (2.4-era UML derived interface MACs this way; 6.1 does not, but
// the HOWTO and many scripts still use such addresses). ok is false if ip is
// not IPv4 (or IPv4-mapped IPv6).
func FromIPv4(ip netip.Addr) (m MAC, ok bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return MAC{}, false
	}
	a := ip.As4()
	return MAC{0xfe, 0xfd, a[0], a[1], a[2], a[3]}, true
}

// Dst returns the destination address of frame.
func Dst(frame []byte) (MAC, error) {
	if len(frame) < HeaderLen {
		return MAC{}, ErrShortFrame
	}
	return MAC(frame[OffDst : OffDst+AddrLen]), nil
}

// Src returns the source address of frame.
func Src(frame []byte) (MAC, error) {
	if len(frame) < HeaderLen {
		return MAC{}, ErrShortFrame
	}
	return MAC(frame[OffSrc : OffSrc+AddrLen]), nil
}

// EtherType returns the big-endian EtherType field of frame.
func EtherType(frame []byte) (uint16, error) {
	if len(frame) < HeaderLen {
		return 0, ErrShortFrame
	}
	return uint16(frame[OffType])<<8 | uint16(frame[OffType+1]), nil
}
