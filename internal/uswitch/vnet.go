//go:build linux

package uswitch

import (
	"github.com/umlkit/umlkit/internal/gso"
	"github.com/umlkit/umlkit/internal/switchproto"
)

// The vnet extension (docs/uml_switch.md, "Large frames"): a port that
// negotiated it sends and receives datagrams of a virtio_net_hdr and a
// frame that may be a 64 KiB segment with a partial checksum. Between two
// such ports the datagram passes unchanged; a port without it (UML,
// vde_plug, the tap) gets the standard frames software segmentation makes
// (internal/gso), and its frames reach vnet ports behind a zero header
// written into the headroom before them.

// packet is one received frame on its way to its destinations: each form
// is made at most once, when a destination needs it.
type packet struct {
	buf   []byte // headroom bytes, then the datagram as received
	frame []byte // the Ethernet frame (in buf)
	vnet  bool   // the datagram starts with a vnet header

	plain   [][]byte // the plain forms, once made (nil: not yet, or bad)
	made    bool
	hdrDone bool // buf's headroom holds a zero header
	one     [1][]byte
}

// packet readies tx.pk for the datagram in buf (after headroom) whose
// frame is frame.
func (tx *txBatch) packet(buf, frame []byte, vnet bool) *packet {
	pk := &tx.pk
	*pk = packet{buf: buf, frame: frame, vnet: vnet}
	return pk
}

// vnetForm is the datagram for a vnet port.
func (pk *packet) vnetForm() []byte {
	if pk.vnet {
		return pk.buf[headroom:]
	}
	if !pk.hdrDone {
		clear(pk.buf[:switchproto.VnetHdrLen])
		pk.hdrDone = true
	}
	return pk.buf[headroom-switchproto.VnetHdrLen:]
}

// plainForms returns the standard frames for a port without the
// extension: the frame itself, or the segments with complete checksums of
// a vnet frame that needs them; nil when its header is malformed.
func (s *Switch) plainForms(tx *txBatch, pk *packet) [][]byte {
	if pk.made {
		return pk.plain
	}
	pk.made = true
	if !pk.vnet {
		pk.one[0] = pk.frame
		pk.plain = pk.one[:]
		return pk.plain
	}
	h, err := gso.ParseHdr(pk.buf[headroom:])
	if err == nil && h.GSOType == gso.TypeNone && h.Flags&gso.FlagNeedsCsum == 0 {
		pk.one[0] = pk.frame
		pk.plain = pk.one[:]
		return pk.plain
	}
	if tx.segOut {
		// The segmenter's buffers still hold queued frames.
		s.flush(tx)
	}
	if err == nil {
		pk.plain, err = tx.seg.Segment(h, pk.frame)
	}
	if err != nil {
		pk.plain = nil
		s.badFrames.Add(1)
		s.limited(&s.limBad, s.err, "Bad vnet frame dropped: %v\n", err)
		return nil
	}
	tx.segOut = true
	return pk.plain
}
