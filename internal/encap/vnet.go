package encap

import "encoding/binary"

// The virtio_net_hdr (struct virtio_net_hdr, 10 bytes, host-endian on
// Linux: little-endian on every architecture this builds for) that a
// packet socket with PACKET_VNET_HDR puts before each frame: how the
// host's offloads left the frame's checksum and segmentation.

// VnetHdrLen is the size of a virtio_net_hdr without num_buffers.
const VnetHdrLen = 10

// Flags and GSO types of a virtio_net_hdr.
const (
	VnetNeedsCsum = 1 // the checksum at CsumStart+CsumOffset is partial
	VnetGSONone   = 0
)

// VnetHdr is a decoded virtio_net_hdr.
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// DecodeVnetHdr decodes the header at the start of p.
func DecodeVnetHdr(p []byte) (VnetHdr, error) {
	if len(p) < VnetHdrLen {
		return VnetHdr{}, ErrShort
	}
	return VnetHdr{
		Flags:      p[0],
		GSOType:    p[1],
		HdrLen:     binary.LittleEndian.Uint16(p[2:]),
		GSOSize:    binary.LittleEndian.Uint16(p[4:]),
		CsumStart:  binary.LittleEndian.Uint16(p[6:]),
		CsumOffset: binary.LittleEndian.Uint16(p[8:]),
	}, nil
}

// CompleteChecksum finishes a partial checksum in frame as the header h
// describes it (VnetNeedsCsum): the 16-bit ones' complement sum of
// frame[CsumStart:] (whose checksum field holds the pseudo-header's sum)
// is stored at CsumStart+CsumOffset. It reports whether the offsets lay
// inside the frame.
func CompleteChecksum(frame []byte, h VnetHdr) bool {
	if h.Flags&VnetNeedsCsum == 0 {
		return true
	}
	start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	if start >= len(frame) || at+2 > len(frame) {
		return false
	}
	var sum uint32
	b := frame[start:]
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 && h.CsumOffset == 6 { // UDP (its checksum is at offset 6) sends a zero sum as 0xffff
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[at:], c)
	return true
}
