// Package encap is the wire format of UML's tunnelling vector transports:
// the GRE header of vecN:transport=gre (RFC 2890, protocol 0x6558:
// transparent Ethernet bridging) and the L2TPv3 data header of
// vecN:transport=l2tpv3 (RFC 3931, over IP protocol 115 or UDP). Pure: no
// I/O. All fields are big-endian. Spec: shared/spec/net.md §6.
package encap

import (
	"encoding/binary"
	"errors"
)

// Errors of Decode.
var (
	ErrShort    = errors.New("encap: packet too short")
	ErrProtocol = errors.New("encap: not transparent Ethernet bridging")
	ErrKey      = errors.New("encap: key or session does not match")
	ErrCookie   = errors.New("encap: cookie does not match")
	ErrVersion  = errors.New("encap: unsupported GRE flags or version")
)

// GRE flag bits (first 16-bit word) and the payload type.
const (
	GREChecksum = 0x8000
	GREKey      = 0x2000
	GRESequence = 0x1000
	// ProtoTEB is transparent Ethernet bridging: the payload is a frame.
	ProtoTEB = 0x6558
)

// GRE is the header of one GRE tunnel direction.
type GRE struct {
	Key         bool   // a 32-bit key follows the base header
	KeyValue    uint32 // sent (tx_key) or expected (rx_key)
	Sequence    bool   // a 32-bit sequence number follows
	PinSequence bool   // send sequence 0 always (pin_sequence)
}

// Len is the header's length.
func (g *GRE) Len() int {
	n := 4
	if g.Key {
		n += 4
	}
	if g.Sequence {
		n += 4
	}
	return n
}

// Append appends the header for the next packet, with sequence seq.
func (g *GRE) Append(b []byte, seq uint32) []byte {
	flags := uint16(0)
	if g.Key {
		flags |= GREKey
	}
	if g.Sequence {
		flags |= GRESequence
	}
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, ProtoTEB)
	if g.Key {
		b = binary.BigEndian.AppendUint32(b, g.KeyValue)
	}
	if g.Sequence {
		if g.PinSequence {
			seq = 0
		}
		b = binary.BigEndian.AppendUint32(b, seq)
	}
	return b
}

// Decode checks a received GRE packet (without its IP header) against g,
// the receiving direction, and returns the payload: an Ethernet frame.
// The peer's flags decide which optional fields are present; a key must
// match when g expects one.
func (g *GRE) Decode(p []byte) ([]byte, error) {
	if len(p) < 4 {
		return nil, ErrShort
	}
	flags := binary.BigEndian.Uint16(p)
	if flags&0x4fff != 0 { // routing, strict source route, recursion, flags, version 0 only
		return nil, ErrVersion
	}
	if binary.BigEndian.Uint16(p[2:]) != ProtoTEB {
		return nil, ErrProtocol
	}
	off := 4
	if flags&GREChecksum != 0 {
		off += 4 // checksum and reserved1
	}
	if flags&GREKey != 0 {
		if len(p) < off+4 {
			return nil, ErrShort
		}
		if g.Key && binary.BigEndian.Uint32(p[off:]) != g.KeyValue {
			return nil, ErrKey
		}
		off += 4
	} else if g.Key {
		return nil, ErrKey
	}
	if flags&GRESequence != 0 {
		off += 4
	}
	if len(p) < off {
		return nil, ErrShort
	}
	return p[off:], nil
}

// L2TPv3 is the data header of one L2TPv3 direction.
type L2TPv3 struct {
	UDP        bool   // over UDP: a 4-byte flags/version word comes first
	Session    uint32 // sent (tx_session) or expected (rx_session)
	Cookie     bool   // a cookie follows the session id
	Cookie64   bool   // the cookie is 64 bits (else 32)
	CookieVal  uint64 // sent (tx_cookie) or expected (rx_cookie)
	Counter    bool   // a 32-bit counter (L2-specific sublayer) follows
	PinCounter bool   // send counter 0 always (pin_counter)
}

// UDPDataWord is the first word of an L2TPv3-over-UDP data message: T=0,
// version 3.
const UDPDataWord = 0x00030000

// Len is the header's length.
func (l *L2TPv3) Len() int {
	n := 4
	if l.UDP {
		n += 4
	}
	if l.Cookie {
		n += 4
		if l.Cookie64 {
			n += 4
		}
	}
	if l.Counter {
		n += 4
	}
	return n
}

// Append appends the header for the next packet, with counter seq.
func (l *L2TPv3) Append(b []byte, seq uint32) []byte {
	if l.UDP {
		b = binary.BigEndian.AppendUint32(b, UDPDataWord)
	}
	b = binary.BigEndian.AppendUint32(b, l.Session)
	if l.Cookie {
		if l.Cookie64 {
			b = binary.BigEndian.AppendUint64(b, l.CookieVal)
		} else {
			b = binary.BigEndian.AppendUint32(b, uint32(l.CookieVal))
		}
	}
	if l.Counter {
		if l.PinCounter {
			seq = 0
		}
		b = binary.BigEndian.AppendUint32(b, seq)
	}
	return b
}

// Decode checks a received packet (without its IP header; with the UDP
// word in UDP mode) against l, the receiving direction, and returns the
// frame. Both ends must agree on the layout, as with UML: it is not
// carried in the packet.
func (l *L2TPv3) Decode(p []byte) ([]byte, error) {
	if len(p) < l.Len() {
		return nil, ErrShort
	}
	off := 0
	if l.UDP {
		if binary.BigEndian.Uint32(p) != UDPDataWord {
			return nil, ErrVersion
		}
		off += 4
	}
	if binary.BigEndian.Uint32(p[off:]) != l.Session {
		return nil, ErrKey
	}
	off += 4
	if l.Cookie {
		var c uint64
		if l.Cookie64 {
			c = binary.BigEndian.Uint64(p[off:])
			off += 8
		} else {
			c = uint64(binary.BigEndian.Uint32(p[off:]))
			off += 4
		}
		if c != l.CookieVal {
			return nil, ErrCookie
		}
	}
	if l.Counter {
		off += 4
	}
	return p[off:], nil
}

// StripIPv4 returns the payload of an IPv4 packet as a raw IPv4 socket
// delivers it (header included), or ErrShort.
func StripIPv4(p []byte) ([]byte, error) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return nil, ErrShort
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl {
		return nil, ErrShort
	}
	return p[ihl:], nil
}
