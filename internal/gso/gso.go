package gso

import "encoding/binary"

// HdrLen is the size of the legacy struct virtio_net_hdr (no num_buffers).
const HdrLen = 10

// Hdr flags and gso types (virtio_net_hdr.flags, .gso_type).
const (
	FlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	FlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	TypeNone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	TypeTCPv4 = 1    // TSO over IPv4
	TypeUDP   = 3    // UFO: IP fragmentation of one datagram
	TypeTCPv6 = 4    // TSO over IPv6
	TypeUDPL4 = 5    // USO: one UDP datagram per gso_size
	TypeECN   = 0x80 // the TCP stream uses ECN (CWR handling)
)

// Offsets of the header's fields.
const (
	offFlags      = 0
	offGSOType    = 1
	offHdrLen     = 2
	offGSOSize    = 4
	offCsumStart  = 6
	offCsumOffset = 8
)

// Limits of Segment.
const (
	// MaxFrameLen is the longest frame Segment takes: 64 KiB of IP
	// packet plus room for the link and IPv6 headers.
	MaxFrameLen = 64<<10 + 256
	// MaxHeaderLen is the longest header (link, network and, except for
	// UFO, transport) Segment copies into every segment.
	MaxHeaderLen = 256
	// MaxSegments is the most segments one frame may become (64 KiB at
	// Linux's smallest MSS, 48, is 1366).
	MaxSegments = 2048
	// MaxUSOSegments is the kernel's UDP_MAX_SEGMENTS: a USO frame with
	// more payload than this many gso_size pieces is refused.
	MaxUSOSegments = 128
)

// Hdr is the legacy virtio_net_hdr. Its fields are in guest-native byte
// order on the wire (a TAP device uses the host's order unless told
// otherwise with TUNSETVNETLE/BE).
type Hdr struct {
	Flags, GSOType                         uint8
	HdrLen, GSOSize, CsumStart, CsumOffset uint16
}

// ParseHdr decodes the first HdrLen bytes of b.
func ParseHdr(b []byte) (Hdr, error) {
	if len(b) < HdrLen {
		return Hdr{}, ErrShortHdr
	}
	return Hdr{
		Flags:      b[offFlags],
		GSOType:    b[offGSOType],
		HdrLen:     binary.NativeEndian.Uint16(b[offHdrLen:]),
		GSOSize:    binary.NativeEndian.Uint16(b[offGSOSize:]),
		CsumStart:  binary.NativeEndian.Uint16(b[offCsumStart:]),
		CsumOffset: binary.NativeEndian.Uint16(b[offCsumOffset:]),
	}, nil
}

// Put writes h into the first HdrLen bytes of b, which must be that long.
func (h Hdr) Put(b []byte) {
	_ = b[HdrLen-1]
	b[offFlags] = h.Flags
	b[offGSOType] = h.GSOType
	binary.NativeEndian.PutUint16(b[offHdrLen:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[offGSOSize:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[offCsumStart:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[offCsumOffset:], h.CsumOffset)
}
