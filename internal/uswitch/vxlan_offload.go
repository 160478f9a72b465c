//go:build linux

package uswitch

import (
	"encoding/binary"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/gso"
)

// Offloads left undone (docs/uml_switch.md, "VXLAN"): when Linux's own
// stack sends TCP or UDP through a vxlan device, the inner checksum is
// left for the NIC to finish (CHECKSUM_PARTIAL: the field holds the folded
// pseudo-header sum), and a TCP stream goes down as 64 KiB TSO packets for
// the NIC (or the kernel, for one that cannot) to cut. A veth does
// neither: a user-space endpoint in another network namespace (this
// switch, VDE's plugs) receives the datagram as the sender built it, and a
// guest drops the bad checksum or the oversized frame. The outer UDP
// checksum has verified the datagram end to end, so an inner checksum
// that fails while its field holds exactly that pseudo-header sum was left
// so by the sender. The uplink finishes the job: completePartial fills in
// the checksum of a frame of standard size; tsoHdr describes a larger TCP
// frame as a vnet GSO frame (gso.Hdr), which vnet ports take whole and
// every other port gets cut into standard frames with complete checksums,
// as frames from our guests are (vnet.go).

// Offsets and sizes of the headers read here.
const (
	offEthType = 12
	vlanTagLen = 4
	typeVLAN   = 0x8100
	typeIPv4   = 0x0800
	typeIPv6   = 0x86dd
	ipv4Min    = 20
	ipv6Hdr    = 40
	protoTCP   = 6
	protoUDP   = 17
	tcpMin     = 20
	tcpCsumAt  = 16
	tcpFlagCWR = 0x80
	udpHdr     = 8
	udpCsumAt  = 6
	// stdIPMTU is the IP MTU of a standard Ethernet LAN: the size TSO
	// frames are cut to.
	stdIPMTU = 1500
)

// innerL4 locates the transport header of an IPv4 frame, or an IPv6 one
// without extension headers, with at most one 802.1Q tag.
type innerL4 struct {
	l3, l4 int // offsets of the IP and transport headers in the frame
	seg    []byte
	proto  uint8
	pseudo uint32 // pseudo-header sum for seg's length
	csumAt int    // offset of the checksum in seg
	v6     bool
}

func parseInner(frame []byte) (innerL4, bool) {
	var in innerL4
	if len(frame) < ether.HeaderLen {
		return in, false
	}
	in.l3 = ether.HeaderLen
	et := binary.BigEndian.Uint16(frame[offEthType:])
	if et == typeVLAN && len(frame) >= ether.HeaderLen+vlanTagLen {
		et = binary.BigEndian.Uint16(frame[offEthType+vlanTagLen:])
		in.l3 += vlanTagLen
	}
	ip := frame[in.l3:]
	switch et {
	case typeIPv4:
		if len(ip) < ipv4Min || ip[0]>>4 != 4 {
			return in, false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < ipv4Min || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return in, false // bad, or a fragment: no transport header to finish
		}
		in.proto, in.l4, in.seg = ip[9], in.l3+ihl, ip[ihl:total]
		in.pseudo = gso.PseudoHeaderSum4([4]byte(ip[12:16]), [4]byte(ip[16:20]), in.proto, len(in.seg))
	case typeIPv6:
		if len(ip) < ipv6Hdr || ip[0]>>4 != 6 {
			return in, false
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if ipv6Hdr+plen > len(ip) {
			return in, false
		}
		in.proto, in.l4, in.seg, in.v6 = ip[6], in.l3+ipv6Hdr, ip[ipv6Hdr:ipv6Hdr+plen], true
		in.pseudo = gso.PseudoHeaderSum6([16]byte(ip[8:24]), [16]byte(ip[24:40]), in.proto, len(in.seg))
	default:
		return in, false
	}
	switch {
	case in.proto == protoTCP && len(in.seg) >= tcpMin:
		in.csumAt = tcpCsumAt
	case in.proto == protoUDP && len(in.seg) >= udpHdr:
		in.csumAt = udpCsumAt
	default:
		return in, false
	}
	return in, true
}

// partial reports whether the checksum was left for the NIC: the field
// holds the pseudo-header sum and the checksum does not verify.
func (in innerL4) partial() bool {
	field := binary.BigEndian.Uint16(in.seg[in.csumAt:])
	return field == foldSum(in.pseudo) && !(in.proto == protoUDP && field == 0) && gso.Checksum(in.seg, in.pseudo) != 0
}

// completePartial finishes the TCP or UDP checksum of frame when it was
// left partial, and reports whether it did.
func completePartial(frame []byte) bool {
	in, ok := parseInner(frame)
	if !ok || !in.partial() {
		return false
	}
	// The NIC's part: the ones' complement of the sum from the transport
	// header on, the field (holding the pseudo-header sum) included.
	c := gso.Checksum(in.seg, 0)
	if in.proto == protoUDP && c == 0 {
		c = 0xffff // UDP sends a zero checksum as all ones
	}
	binary.BigEndian.PutUint16(in.seg[in.csumAt:], c)
	return true
}

// tsoHdr returns the vnet header of frame when it is an unsegmented TSO
// packet: TCP with a partial checksum and more payload than one standard
// frame carries. The segments are cut to standard frames (the sender's
// own segment size is not on the wire).
func tsoHdr(frame []byte) (gso.Hdr, bool) {
	if len(frame) <= ether.MaxFrame {
		return gso.Hdr{}, false
	}
	in, ok := parseInner(frame)
	if !ok || in.proto != protoTCP || in.l4+len(in.seg) != len(frame) {
		return gso.Hdr{}, false // not TCP, or trailing bytes a TSO frame never has
	}
	thl := int(in.seg[12]>>4) * 4
	ipHdr := in.l4 - in.l3
	if thl < tcpMin || thl > len(in.seg) || ipHdr+thl >= stdIPMTU || len(in.seg)-thl <= stdIPMTU-ipHdr-thl || !in.partial() {
		return gso.Hdr{}, false
	}
	h := gso.Hdr{
		Flags:      gso.FlagNeedsCsum,
		GSOType:    gso.TypeTCPv4,
		HdrLen:     uint16(in.l4 + thl),
		GSOSize:    uint16(stdIPMTU - ipHdr - thl),
		CsumStart:  uint16(in.l4),
		CsumOffset: tcpCsumAt,
	}
	if in.v6 {
		h.GSOType = gso.TypeTCPv6
	}
	if in.seg[13]&tcpFlagCWR != 0 {
		h.GSOType |= gso.TypeECN // CWR on the first segment only
	}
	return h, true
}

// foldSum reduces a ones' complement sum to 16 bits.
func foldSum(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
