package gso

import (
	"encoding/binary"
)

// pkt describes a test frame: Ethernet (with VLAN tags), IPv4 or IPv6,
// TCP or UDP, and a patterned payload. Its L4 checksum field holds the
// pseudo-header seed, as Linux leaves it for CHECKSUM_PARTIAL.
type pkt struct {
	tpids    []uint16 // VLAN tag protocol IDs, outermost first
	v6       bool
	ipOpts   []byte // IPv4 options, a multiple of 4 bytes
	hbh      bool   // IPv6: an 8-byte hop-by-hop options header first
	udp      bool
	tcpOpts  []byte // a multiple of 4 bytes
	tcpFlags uint8  // ACK is always set
	n        int    // payload bytes
	id       uint16
	df       bool
	seq      uint32
	salt     byte // varies the payload pattern
	text     bool // a printable payload (compact fuzz corpus files)
	ecn      uint8
}

var (
	testSrcMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	testDstMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	testSrc4   = [4]byte{10, 1, 2, 3}
	testDst4   = [4]byte{10, 4, 5, 6}
	testSrc6   = [16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	testDst6   = [16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
)

// frame builds the frame and returns it with its L4 offset.
func (p pkt) frame() ([]byte, int) {
	b := append([]byte(nil), testDstMAC...)
	b = append(b, testSrcMAC...)
	for i, tpid := range p.tpids {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i))
	}
	proto := uint8(protoTCP)
	l4len := tcpMinLen + len(p.tcpOpts) + p.n
	if p.udp {
		proto = protoUDP
		l4len = udpLen + p.n
	}
	if p.v6 {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
		ext := 0
		next := proto
		if p.hbh {
			ext = 8
			next = protoHopByHop
		}
		b = append(b, 0x60|p.ecn>>4, p.ecn<<4, 0x12, 0x34)
		b = binary.BigEndian.AppendUint16(b, uint16(ext+l4len))
		b = append(b, next, 64)
		b = append(b, testSrc6[:]...)
		b = append(b, testDst6[:]...)
		if p.hbh {
			b = append(b, proto, 0, 1, 4, 0, 0, 0, 0) // PadN
		}
	} else {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
		ihl := ipv4MinLen + len(p.ipOpts)
		b = append(b, 0x40|byte(ihl/4), p.ecn)
		b = binary.BigEndian.AppendUint16(b, uint16(ihl+l4len))
		b = binary.BigEndian.AppendUint16(b, p.id)
		var frag uint16
		if p.df {
			frag = 0x4000
		}
		b = binary.BigEndian.AppendUint16(b, frag)
		b = append(b, 64, proto, 0, 0)
		b = append(b, testSrc4[:]...)
		b = append(b, testDst4[:]...)
		b = append(b, p.ipOpts...)
		l3 := len(b) - ihl
		binary.BigEndian.PutUint16(b[l3+ipv4OffCsum:], Checksum(b[l3:], 0))
	}
	l4 := len(b)
	var seedSum uint32
	if p.v6 {
		seedSum = PseudoHeaderSum6(testSrc6, testDst6, proto, l4len)
	} else {
		seedSum = PseudoHeaderSum4(testSrc4, testDst4, proto, l4len)
	}
	seed := fold(uint64(seedSum))
	if p.udp {
		b = binary.BigEndian.AppendUint16(b, 5000)
		b = binary.BigEndian.AppendUint16(b, 6000)
		b = binary.BigEndian.AppendUint16(b, uint16(l4len))
		b = binary.BigEndian.AppendUint16(b, seed)
	} else {
		b = binary.BigEndian.AppendUint16(b, 5000)
		b = binary.BigEndian.AppendUint16(b, 6000)
		b = binary.BigEndian.AppendUint32(b, p.seq)
		b = binary.BigEndian.AppendUint32(b, 0x01020304) // ack
		b = append(b, byte((tcpMinLen+len(p.tcpOpts))/4)<<4, p.tcpFlags|0x10)
		b = binary.BigEndian.AppendUint16(b, 0xffff) // window
		b = binary.BigEndian.AppendUint16(b, seed)
		b = binary.BigEndian.AppendUint16(b, 0) // urgent
		b = append(b, p.tcpOpts...)
	}
	for i := 0; i < p.n; i++ {
		if p.text {
			b = append(b, 'a'+byte(i%26))
		} else {
			b = append(b, byte(i*7+i>>8)^p.salt)
		}
	}
	return b, l4
}

// hdr returns the virtio header for p's frame with gso type typ and mss.
func (p pkt) hdr(typ uint8, mss int) Hdr {
	_, l4 := p.frame()
	h := Hdr{Flags: FlagNeedsCsum, GSOType: typ, GSOSize: uint16(mss), CsumStart: uint16(l4), CsumOffset: tcpOffCsum}
	if p.udp {
		h.CsumOffset = udpOffCsum
	}
	if typ == TypeNone {
		h.GSOSize = 0
	}
	h.HdrLen = uint16(l4 + int(h.CsumOffset) + 2)
	if !p.udp {
		h.HdrLen = uint16(l4 + tcpMinLen + len(p.tcpOpts))
	}
	return h
}
