// Package vxlan is the wire format of VXLAN (RFC 7348 §5): the 8-byte
// header that precedes an Ethernet frame in a UDP datagram (destination
// port 4789). Pure: no I/O; the header is big-endian.
//
// Layout (RFC 7348 §5, "VXLAN Header"):
//
//	byte 0     flags: R R R R I R R R (I = 0x08: the VNI is valid)
//	bytes 1-3  reserved
//	bytes 4-6  VNI (24 bits)
//	byte 7     reserved
//
// As the RFC says, reserved bits (the seven R flags and the reserved
// bytes) are written as zero and ignored when read; a header without the I
// flag is refused (ErrNoVNI). (Linux's vxlan device diverges here: it drops
// datagrams with unknown flags or reserved bits set unless an extension
// that uses them is configured.)
package vxlan

import (
	"errors"
	"strconv"
)

// Sizes, offsets and constants of the header.
const (
	// HeaderLen is the length of the VXLAN header.
	HeaderLen = 8
	// Overhead is how much smaller than the underlay's MTU the inner MTU
	// must be on an IPv4 underlay without options: IPv4 20 + UDP 8 +
	// VXLAN 8 + the inner frame's Ethernet header 14 (RFC 7348 §4).
	Overhead = 50
	// Overhead6 is Overhead on an IPv6 underlay (IPv6 header 40).
	Overhead6 = 70
	// Port is the IANA-assigned UDP destination port.
	Port = 4789
	// FlagI marks a valid VNI.
	FlagI = 0x08
	// MaxVNI is the largest 24-bit VNI.
	MaxVNI = 1<<24 - 1

	offFlags = 0
	offVNI   = 4
)

// Errors of Header.UnmarshalBinary.
var (
	ErrShort = errors.New("vxlan: datagram shorter than the 8-byte header")
	ErrNoVNI = errors.New("vxlan: I flag not set (no valid VNI)")
	ErrVNI   = errors.New("vxlan: VNI does not fit 24 bits")
)

// Header is a decoded VXLAN header.
type Header struct {
	// VNI is the 24-bit VXLAN network identifier.
	VNI uint32
	// Flags is the received flags byte (FlagI always set after a
	// successful decode; reserved bits as received). AppendBinary ignores
	// it and writes FlagI alone.
	Flags byte
}

// UnmarshalBinary decodes the header at the start of b (the rest of b is
// the frame).
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if b[offFlags]&FlagI == 0 {
		return ErrNoVNI
	}
	h.Flags = b[offFlags]
	h.VNI = uint32(b[offVNI])<<16 | uint32(b[offVNI+1])<<8 | uint32(b[offVNI+2])
	return nil
}

// AppendBinary appends the 8-byte header for h.VNI (I flag set, every
// reserved bit zero) to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	if h.VNI > MaxVNI {
		return b, ErrVNI
	}
	return append(b, FlagI, 0, 0, 0, byte(h.VNI>>16), byte(h.VNI>>8), byte(h.VNI), 0), nil
}

// MarshalBinary returns the 8-byte header for h.VNI.
func (h Header) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, HeaderLen))
}

// Decode splits a VXLAN datagram into its header and the frame after it.
func Decode(p []byte) (Header, []byte, error) {
	var h Header
	if err := h.UnmarshalBinary(p); err != nil {
		return h, nil, err
	}
	return h, p[HeaderLen:], nil
}

// ParseVNI parses a VNI in decimal, 0..MaxVNI (Linux accepts id 0 too).
func ParseVNI(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > MaxVNI {
		return 0, ErrVNI
	}
	return uint32(n), nil
}
