package gso

import (
	"encoding/binary"
	"math/rand/v2"
)

// Link, network and transport header constants.
const (
	ethHdrLen    = 14
	offEtherType = 12
	vlanLen      = 4

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // 802.1Q
	etherTypeQinQ = 0x88a8 // 802.1ad

	ipv4MinLen   = 20
	ipv4OffLen   = 2
	ipv4OffID    = 4
	ipv4OffFrag  = 6
	ipv4OffProto = 9
	ipv4OffCsum  = 10
	ipv4OffSrc   = 12
	ipv4OffDst   = 16
	ipv4MF       = 0x2000
	ipv4FragMask = 0x3fff // MF and offset

	ipv6Len        = 40
	ipv6OffPayload = 4
	ipv6OffNext    = 6
	ipv6OffSrc     = 8
	ipv6OffDst     = 24
	ipv6FragLen    = 8
	ipv6M          = 1

	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoDestOpts = 60

	tcpMinLen  = 20
	tcpOffSeq  = 4
	tcpOffDoff = 12
	tcpOffFlag = 13
	tcpOffCsum = 16
	tcpFIN     = 0x01
	tcpPSH     = 0x08
	tcpCWR     = 0x80

	udpLen     = 8
	udpOffLen  = 4
	udpOffCsum = 6
)

// Segmenter turns virtio-net-header frames into plain frames. It holds
// reusable buffers; its zero value is ready. Not safe for concurrent use.
type Segmenter struct {
	buf  []byte
	segs [][]byte
}

// layout is where a frame's headers are.
type layout struct {
	l3, l4 int // offsets of the IP and transport headers
	hdrEnd int // end of the transport header
	v6     bool
	ext    bool // IPv6 extension headers before the transport header
}

// Segment returns the plain frames for frame (the Ethernet frame after its
// header h): complete checksums (NEEDS_CSUM resolved), GSO split by
// GSOSize. For TypeNone without NEEDS_CSUM it returns [frame] itself (no
// copy). The returned slices point into the Segmenter's buffers (or frame)
// and stay valid until the next call; frame is never modified. An error
// means the frame is malformed or beyond this package's limits (see the
// package comment): the caller drops it.
func (s *Segmenter) Segment(h Hdr, frame []byte) ([][]byte, error) {
	s.segs = s.segs[:0]
	if err := checkHdr(h, frame); err != nil {
		return nil, err
	}
	if h.GSOType == TypeNone {
		return s.plain(h, frame), nil
	}
	ly, err := parse(h, frame)
	if err != nil {
		return nil, err
	}
	switch h.GSOType &^ TypeECN {
	case TypeTCPv4, TypeTCPv6:
		return s.tso(h, frame, ly)
	case TypeUDP:
		return s.ufo(h, frame, ly)
	default:
		return s.uso(h, frame, ly)
	}
}

// checkHdr checks h against the frame's length, as the TAP device does
// when a frame is written to it.
func checkHdr(h Hdr, frame []byte) error {
	if len(frame) > MaxFrameLen {
		return errFrameLen
	}
	if len(frame) < ethHdrLen {
		return errShort
	}
	switch h.GSOType {
	case TypeNone, TypeTCPv4, TypeTCPv4 | TypeECN, TypeTCPv6, TypeTCPv6 | TypeECN,
		TypeUDP, TypeUDP | TypeECN, TypeUDPL4:
	default:
		return errGSOType
	}
	if h.GSOType != TypeNone && h.GSOSize == 0 {
		return errGSOSize
	}
	if int(h.HdrLen) > len(frame) {
		return errHdrLen
	}
	if h.Flags&FlagNeedsCsum != 0 {
		// The kernel wants the L4 header after at least an IPv4
		// header's worth of bytes.
		if int(h.CsumStart)+int(h.CsumOffset)+2 > len(frame) || h.CsumStart < ipv4MinLen {
			return errCsumRange
		}
	}
	return nil
}

// parse finds the network and transport headers of a GSO frame and checks
// them against h.
func parse(h Hdr, frame []byte) (layout, error) {
	var ly layout
	off := offEtherType
	et := binary.BigEndian.Uint16(frame[off:])
	for et == etherTypeVLAN || et == etherTypeQinQ {
		off += vlanLen
		if off+2 > len(frame) {
			return ly, errShort
		}
		et = binary.BigEndian.Uint16(frame[off:])
	}
	ly.l3 = off + 2
	typ := h.GSOType &^ TypeECN
	var proto uint8
	var err error
	switch {
	case et == etherTypeIPv4 && typ != TypeTCPv6:
		proto, err = parseIPv4(frame, &ly)
	case et == etherTypeIPv6 && typ != TypeTCPv4:
		proto, err = parseIPv6(frame, &ly)
	default:
		return ly, errEtherType
	}
	if err != nil {
		return ly, err
	}
	if typ == TypeTCPv4 || typ == TypeTCPv6 {
		err = parseTCP(h, frame, proto, &ly)
	} else {
		err = parseUDP(h, frame, proto, &ly)
	}
	if err != nil {
		return ly, err
	}
	if ly.hdrEnd > MaxHeaderLen {
		return ly, errHeaderLen
	}
	return ly, nil
}

func parseIPv4(frame []byte, ly *layout) (uint8, error) {
	ip := frame[ly.l3:]
	if len(ip) < ipv4MinLen {
		return 0, errShort
	}
	if ip[0]>>4 != 4 {
		return 0, errIPVersion
	}
	ihl := int(ip[0]&0xf) * 4
	if ihl < ipv4MinLen || ihl > len(ip) {
		return 0, errShort
	}
	if int(binary.BigEndian.Uint16(ip[ipv4OffLen:])) != len(ip) {
		return 0, errIPLen
	}
	if binary.BigEndian.Uint16(ip[ipv4OffFrag:])&ipv4FragMask != 0 {
		return 0, errFragment
	}
	ly.l4 = ly.l3 + ihl
	return ip[ipv4OffProto], nil
}

// parseIPv6 walks the extension headers software GSO walks (hop-by-hop,
// routing, destination options) to the transport header.
func parseIPv6(frame []byte, ly *layout) (uint8, error) {
	ip := frame[ly.l3:]
	if len(ip) < ipv6Len {
		return 0, errShort
	}
	if ip[0]>>4 != 6 {
		return 0, errIPVersion
	}
	if int(binary.BigEndian.Uint16(ip[ipv6OffPayload:])) != len(ip)-ipv6Len || len(ip) == ipv6Len {
		return 0, errIPLen
	}
	ly.v6 = true
	next := ip[ipv6OffNext]
	off := ipv6Len
	for {
		switch next {
		case protoTCP, protoUDP:
			ly.l4 = ly.l3 + off
			return next, nil
		case protoHopByHop, protoRouting, protoDestOpts:
			if off+8 > len(ip) {
				return 0, errShort
			}
			next = ip[off]
			off += (int(ip[off+1]) + 1) * 8
			ly.ext = true
			if off > len(ip) {
				return 0, errShort
			}
		case protoFragment:
			return 0, errFragment
		default:
			return 0, errExtHdr
		}
	}
}

func parseTCP(h Hdr, frame []byte, proto uint8, ly *layout) error {
	if proto != protoTCP {
		return errProto
	}
	if err := checkCsumField(h, ly.l4, tcpOffCsum); err != nil {
		return err
	}
	if ly.l4+tcpMinLen > len(frame) {
		return errShort
	}
	doff := int(frame[ly.l4+tcpOffDoff]>>4) * 4
	if doff < tcpMinLen {
		return errTCPHdr
	}
	if ly.l4+doff > len(frame) {
		return errShort
	}
	ly.hdrEnd = ly.l4 + doff
	return nil
}

func parseUDP(h Hdr, frame []byte, proto uint8, ly *layout) error {
	if proto != protoUDP {
		return errProto
	}
	if err := checkCsumField(h, ly.l4, udpOffCsum); err != nil {
		return err
	}
	if ly.l4+udpLen > len(frame) {
		return errShort
	}
	if int(binary.BigEndian.Uint16(frame[ly.l4+udpOffLen:])) != len(frame)-ly.l4 {
		return errUDPLen
	}
	ly.hdrEnd = ly.l4 + udpLen
	return nil
}

// checkCsumField checks that NEEDS_CSUM points at the transport header's
// checksum field.
func checkCsumField(h Hdr, l4, field int) error {
	if h.Flags&FlagNeedsCsum == 0 {
		return nil
	}
	if int(h.CsumStart) != l4 {
		return errCsumStart
	}
	if int(h.CsumOffset) != field {
		return errCsumOffset
	}
	return nil
}

// plain returns a frame that is not (or not really) GSO: as it is, or a
// copy with its checksum completed.
func (s *Segmenter) plain(h Hdr, frame []byte) [][]byte {
	if h.Flags&FlagNeedsCsum == 0 {
		s.segs = append(s.segs, frame)
		return s.segs
	}
	out := s.grow(len(frame))
	copy(out, frame)
	start := int(h.CsumStart)
	field := start + int(h.CsumOffset)
	// The field holds the seed (pseudo-header sum) and is summed with
	// the data; like the kernel, a result of 0 is sent as 0xffff.
	binary.BigEndian.PutUint16(out[field:], nonzero(Checksum(out[start:], 0)))
	s.segs = append(s.segs, out)
	return s.segs
}

// tso splits a TCP frame into segments of GSOSize payload bytes.
func (s *Segmenter) tso(h Hdr, frame []byte, ly layout) ([][]byte, error) {
	mss := int(h.GSOSize)
	hl := ly.hdrEnd
	payload := len(frame) - hl
	// The kernel decides whether a frame is GSO counting TCP options as
	// payload, and drops one whose real payload then fits one segment.
	if len(frame)-ly.l4-tcpMinLen <= mss {
		return s.plain(h, frame), nil
	}
	if payload <= mss {
		return nil, errTCPFits
	}
	n := (payload + mss - 1) / mss
	if n > MaxSegments {
		return nil, errSegments
	}
	out := s.grow(n*hl + payload)
	seed := s.seed(h, frame, ly, protoTCP)
	oldLen := len(frame) - ly.l4
	seq := binary.BigEndian.Uint32(frame[ly.l4+tcpOffSeq:])
	flags := frame[ly.l4+tcpOffFlag]
	for i := 0; i < n; i++ {
		data := frame[hl+i*mss : min(hl+(i+1)*mss, len(frame))]
		seg := out[:hl+len(data)]
		out = out[len(seg):]
		copy(seg, frame[:hl])
		copy(seg[hl:], data)
		fixIP(seg, ly, i)
		th := seg[ly.l4:]
		binary.BigEndian.PutUint32(th[tcpOffSeq:], seq+uint32(i*mss))
		f := flags
		if i < n-1 {
			f &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			f &^= tcpCWR
		}
		th[tcpOffFlag] = f
		th[tcpOffCsum], th[tcpOffCsum+1] = 0, 0
		binary.BigEndian.PutUint16(th[tcpOffCsum:], segChecksum(seed, oldLen, th))
		s.segs = append(s.segs, seg)
	}
	return s.segs, nil
}

// uso splits a UDP frame into datagrams of GSOSize payload bytes.
func (s *Segmenter) uso(h Hdr, frame []byte, ly layout) ([][]byte, error) {
	if h.Flags&FlagNeedsCsum == 0 {
		return nil, errUSOCsum
	}
	mss := int(h.GSOSize)
	hl := ly.hdrEnd
	payload := len(frame) - hl
	if payload > mss*MaxUSOSegments {
		return nil, errUSOSegments
	}
	if payload <= mss {
		return s.plain(h, frame), nil
	}
	n := (payload + mss - 1) / mss
	out := s.grow(n*hl + payload)
	seed := s.seed(h, frame, ly, protoUDP)
	oldLen := len(frame) - ly.l4
	for i := 0; i < n; i++ {
		data := frame[hl+i*mss : min(hl+(i+1)*mss, len(frame))]
		seg := out[:hl+len(data)]
		out = out[len(seg):]
		copy(seg, frame[:hl])
		copy(seg[hl:], data)
		fixIP(seg, ly, i)
		uh := seg[ly.l4:]
		binary.BigEndian.PutUint16(uh[udpOffLen:], uint16(len(uh)))
		uh[udpOffCsum], uh[udpOffCsum+1] = 0, 0
		binary.BigEndian.PutUint16(uh[udpOffCsum:], nonzero(segChecksum(seed, oldLen, uh)))
		s.segs = append(s.segs, seg)
	}
	return s.segs, nil
}

// ufo completes the UDP checksum of the datagram and sends it as IP
// fragments of GSOSize bytes of the datagram (UDP header included).
func (s *Segmenter) ufo(h Hdr, frame []byte, ly layout) ([][]byte, error) {
	mss := int(h.GSOSize)
	dg := frame[ly.l4:]
	if len(dg) <= mss {
		return s.plain(h, frame), nil
	}
	if mss%8 != 0 {
		return nil, errUFOSize
	}
	if ly.ext {
		return nil, errUFOExt
	}
	n := (len(dg) + mss - 1) / mss
	if n > MaxSegments {
		return nil, errSegments
	}
	hl := ly.l4
	if ly.v6 {
		hl += ipv6FragLen
	}
	out := s.grow(n*hl + len(dg))
	// The seed is ignored: sum the datagram with its checksum field
	// taken out (added as its complement).
	sum := uint64(s.pseudo(frame, ly, protoUDP, len(dg))) + uint64(Sum(dg)) +
		uint64(^binary.BigEndian.Uint16(dg[udpOffCsum:]))
	csum := nonzero(^fold(sum))
	id := rand.Uint32() | 1<<31 // any non-zero identification
	for i := 0; i < n; i++ {
		data := dg[i*mss : min((i+1)*mss, len(dg))]
		seg := out[:hl+len(data)]
		out = out[len(seg):]
		copy(seg, frame[:ly.l4])
		copy(seg[hl:], data)
		if i == 0 {
			binary.BigEndian.PutUint16(seg[hl+udpOffCsum:], csum)
		}
		var more uint16
		if i < n-1 {
			more = 1
		}
		ip := seg[ly.l3:]
		if ly.v6 {
			ip[ipv6OffNext] = protoFragment
			binary.BigEndian.PutUint16(ip[ipv6OffPayload:], uint16(len(ip)-ipv6Len))
			fh := ip[ipv6Len:]
			fh[0], fh[1] = protoUDP, 0
			binary.BigEndian.PutUint16(fh[2:], uint16(i*mss)|more*ipv6M)
			binary.BigEndian.PutUint32(fh[4:], id)
		} else {
			binary.BigEndian.PutUint16(ip[ipv4OffLen:], uint16(len(ip)))
			binary.BigEndian.PutUint16(ip[ipv4OffFrag:], uint16(i*mss/8)|more*ipv4MF)
			ipv4Checksum(ip[:ly.l4-ly.l3])
		}
		s.segs = append(s.segs, seg)
	}
	return s.segs, nil
}

// fixIP sets segment i's IPv4 length, ID and header checksum, or its IPv6
// payload length.
func fixIP(seg []byte, ly layout, i int) {
	ip := seg[ly.l3:]
	if ly.v6 {
		binary.BigEndian.PutUint16(ip[ipv6OffPayload:], uint16(len(ip)-ipv6Len))
		return
	}
	binary.BigEndian.PutUint16(ip[ipv4OffLen:], uint16(len(ip)))
	id := binary.BigEndian.Uint16(ip[ipv4OffID:])
	binary.BigEndian.PutUint16(ip[ipv4OffID:], id+uint16(i))
	ipv4Checksum(ip[:ly.l4-ly.l3])
}

func ipv4Checksum(hdr []byte) {
	hdr[ipv4OffCsum], hdr[ipv4OffCsum+1] = 0, 0
	binary.BigEndian.PutUint16(hdr[ipv4OffCsum:], Checksum(hdr, 0))
}

// seed returns the L4 checksum seed for the whole frame: the field's value
// with NEEDS_CSUM, else the pseudo-header sum (the kernel computes it so).
func (s *Segmenter) seed(h Hdr, frame []byte, ly layout, proto uint8) uint16 {
	if h.Flags&FlagNeedsCsum != 0 {
		return binary.BigEndian.Uint16(frame[int(h.CsumStart)+int(h.CsumOffset):])
	}
	return fold(uint64(s.pseudo(frame, ly, proto, len(frame)-ly.l4)))
}

func (s *Segmenter) pseudo(frame []byte, ly layout, proto uint8, length int) uint32 {
	ip := frame[ly.l3:]
	if ly.v6 {
		return pseudoSum(ip[ipv6OffSrc:ipv6OffSrc+16], ip[ipv6OffDst:ipv6OffDst+16], proto, length)
	}
	return pseudoSum(ip[ipv4OffSrc:ipv4OffSrc+4], ip[ipv4OffDst:ipv4OffDst+4], proto, length)
}

// segChecksum is the checksum of segment l4 (its field zeroed): the
// frame's seed moved from the old L4 length to the segment's, as the
// kernel adjusts it, plus the segment's header and data.
func segChecksum(seed uint16, oldLen int, l4 []byte) uint16 {
	sum := uint64(seed) + uint64(^uint16(oldLen)) + uint64(len(l4)) + uint64(Sum(l4))
	return ^fold(sum)
}

// nonzero maps a UDP checksum of 0 to 0xffff (0 means "no checksum").
func nonzero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}

func (s *Segmenter) grow(n int) []byte {
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	return s.buf[:n]
}
