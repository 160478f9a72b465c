package gso

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// This file checks Segment's output with code of its own: a byte-at-a-time
// checksum and a separate header walk, so a bug in Sum or parse does not
// check itself.

func be16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

// refSum is RFC 1071's sum, two bytes at a time, added to acc and folded.
func refSum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return acc
}

// view is what inspect finds in a frame.
type view struct {
	l3, l4  int
	v6, ext bool
	proto   byte
	fragOff int // bytes
	more    bool
	fragID  uint32
	frag    bool // IPv6 fragment header present
}

func inspect(f []byte) (view, error) {
	var v view
	off := 12
	for len(f) >= off+2 && (be16(f[off:]) == 0x8100 || be16(f[off:]) == 0x88a8) {
		off += 4
	}
	if len(f) < off+2 {
		return v, fmt.Errorf("no ethertype")
	}
	v.l3 = off + 2
	switch be16(f[off:]) {
	case 0x0800:
		if len(f) < v.l3+20 {
			return v, fmt.Errorf("short IPv4")
		}
		v.proto = f[v.l3+9]
		v.l4 = v.l3 + int(f[v.l3]&0xf)*4
		fo := be16(f[v.l3+6:])
		v.fragOff = fo & 0x1fff * 8
		v.more = fo&0x2000 != 0
	case 0x86dd:
		v.v6 = true
		if len(f) < v.l3+40 {
			return v, fmt.Errorf("short IPv6")
		}
		nh := f[v.l3+6]
		p := v.l3 + 40
		for {
			if nh != 0 && nh != 43 && nh != 60 && nh != 44 {
				break
			}
			if len(f) < p+8 {
				return v, fmt.Errorf("short extension header")
			}
			if nh == 44 {
				v.frag = true
				v.fragOff = be16(f[p+2:]) &^ 7
				v.more = f[p+3]&1 != 0
				v.fragID = binary.BigEndian.Uint32(f[p+4:])
				nh = f[p]
				p += 8
				continue
			}
			v.ext = true
			nh = f[p]
			p += (int(f[p+1]) + 1) * 8
		}
		v.proto = nh
		v.l4 = p
	default:
		return v, fmt.Errorf("ethertype %#x", be16(f[off:]))
	}
	if v.l4 > len(f) {
		return v, fmt.Errorf("L4 offset %d beyond frame", v.l4)
	}
	return v, nil
}

// refPseudo is the pseudo-header sum of an L4 packet of length bytes in f.
func refPseudo(f []byte, v view, proto byte, length int) uint32 {
	acc := uint32(proto) + uint32(length>>16) + uint32(length&0xffff)
	if v.v6 {
		return refSum(f[v.l3+8:v.l3+40], acc)
	}
	return refSum(f[v.l3+12:v.l3+20], acc)
}

// verify checks segs, Segment's output for (h, frame), and returns the
// first problem.
func verify(h Hdr, frame []byte, segs [][]byte) error {
	typ := h.GSOType &^ TypeECN
	mss := int(h.GSOSize)
	if typ == TypeNone {
		return verifyPlain(h, frame, segs)
	}
	in, err := inspect(frame)
	if err != nil {
		return fmt.Errorf("input: %v", err)
	}
	switch typ {
	case TypeTCPv4, TypeTCPv6:
		if len(frame)-in.l4-20 <= mss {
			return verifyPlain(h, frame, segs)
		}
		return verifySplit(h, frame, segs, in, int(frame[in.l4+12]>>4)*4)
	case TypeUDPL4:
		if len(frame)-in.l4-8 <= mss {
			return verifyPlain(h, frame, segs)
		}
		return verifySplit(h, frame, segs, in, 8)
	default:
		if len(frame)-in.l4 <= mss {
			return verifyPlain(h, frame, segs)
		}
		return verifyUFO(h, frame, segs, in)
	}
}

func verifyPlain(h Hdr, frame []byte, segs [][]byte) error {
	if len(segs) != 1 {
		return fmt.Errorf("%d frames for a plain frame", len(segs))
	}
	s := segs[0]
	if h.Flags&FlagNeedsCsum == 0 {
		if len(s) != len(frame) || (len(s) > 0 && &s[0] != &frame[0]) {
			return fmt.Errorf("plain frame without NEEDS_CSUM is not the input itself")
		}
		return nil
	}
	field := int(h.CsumStart) + int(h.CsumOffset)
	if len(s) != len(frame) || !bytes.Equal(s[:field], frame[:field]) || !bytes.Equal(s[field+2:], frame[field+2:]) {
		return fmt.Errorf("completed frame differs from the input outside the checksum field")
	}
	// The kernel's definition: the sum of [csum_start, end) with the seed
	// in the field, complemented, 0 sent as 0xffff. (At an odd
	// csum_offset the result does not "verify" in the usual sense.)
	want := ^uint16(refSum(frame[h.CsumStart:], 0))
	if want == 0 {
		want = 0xffff
	}
	if got := uint16(be16(s[field:])); got != want {
		return fmt.Errorf("completed checksum %#04x; want %#04x", got, want)
	}
	return nil
}

// seedOK reports whether the frame's L4 checksum seed is the pseudo-header
// sum (or absent): only then must the segments' checksums verify.
func seedOK(h Hdr, frame []byte, in view) bool {
	if h.Flags&FlagNeedsCsum == 0 {
		return true
	}
	got := uint32(be16(frame[int(h.CsumStart)+int(h.CsumOffset):]))
	want := refPseudo(frame, in, in.proto, len(frame)-in.l4)
	return got%0xffff == want%0xffff
}

// verifySplit checks TSO (thl = TCP header length) and USO (thl = 8)
// segments.
func verifySplit(h Hdr, frame []byte, segs [][]byte, in view, thl int) error {
	mss := int(h.GSOSize)
	hl := in.l4 + thl
	payload := frame[hl:]
	udp := in.proto == 17
	if n := (len(payload) + mss - 1) / mss; len(segs) != n {
		return fmt.Errorf("%d segments; want %d", len(segs), n)
	}
	checkSum := seedOK(h, frame, in)
	var joined []byte
	for i, s := range segs {
		last := i == len(segs)-1
		if len(s) < hl || len(s) > hl+mss || (!last && len(s) != hl+mss) {
			return fmt.Errorf("segment %d: length %d with headers %d and mss %d", i, len(s), hl, mss)
		}
		if !bytes.Equal(s[:in.l3], frame[:in.l3]) {
			return fmt.Errorf("segment %d: link header changed", i)
		}
		sv, err := inspect(s)
		if err != nil || sv.l4 != in.l4 || sv.proto != in.proto {
			return fmt.Errorf("segment %d: headers moved (%v)", i, err)
		}
		if err := verifyIP(i, s, frame, in); err != nil {
			return err
		}
		// Transport header: only seq, flags, length and checksum change.
		want := bytes.Clone(frame[in.l4:hl])
		got := bytes.Clone(s[in.l4:hl])
		if udp {
			if be16(got[4:]) != len(s)-in.l4 {
				return fmt.Errorf("segment %d: UDP length %d; want %d", i, be16(got[4:]), len(s)-in.l4)
			}
			clear(got[4:8])
			clear(want[4:8])
		} else {
			seq := binary.BigEndian.Uint32(frame[in.l4+4:]) + uint32(i*mss)
			if binary.BigEndian.Uint32(got[4:]) != seq {
				return fmt.Errorf("segment %d: seq %d; want %d", i, binary.BigEndian.Uint32(got[4:]), seq)
			}
			f := want[13]
			if !last {
				f &^= 0x09 // FIN, PSH
			}
			if i > 0 {
				f &^= 0x80 // CWR
			}
			if got[13] != f {
				return fmt.Errorf("segment %d: flags %#02x; want %#02x", i, got[13], f)
			}
			want[13] = f
			clear(got[4:8])
			clear(want[4:8])
			clear(got[16:18])
			clear(want[16:18])
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("segment %d: transport header changed beyond seq/flags/length/checksum", i)
		}
		if checkSum {
			if refSum(s[in.l4:], refPseudo(s, in, in.proto, len(s)-in.l4)) != 0xffff {
				return fmt.Errorf("segment %d: L4 checksum does not verify", i)
			}
			if udp && be16(s[in.l4+6:]) == 0 {
				return fmt.Errorf("segment %d: UDP checksum 0", i)
			}
		}
		joined = append(joined, s[hl:]...)
	}
	if !bytes.Equal(joined, payload) {
		return fmt.Errorf("segments' payloads do not add up to the input's")
	}
	return nil
}

// verifyIP checks segment s's IP header against the input's: IPv4 length,
// ID (original+i) and checksum, or IPv6 payload length; nothing else
// changed.
func verifyIP(i int, s, frame []byte, in view) error {
	if in.v6 {
		if be16(s[in.l3+4:]) != len(s)-in.l3-40 {
			return fmt.Errorf("segment %d: IPv6 payload length %d; want %d", i, be16(s[in.l3+4:]), len(s)-in.l3-40)
		}
		if !bytes.Equal(s[in.l3:in.l3+4], frame[in.l3:in.l3+4]) || !bytes.Equal(s[in.l3+6:in.l4], frame[in.l3+6:in.l4]) {
			return fmt.Errorf("segment %d: IPv6 header changed beyond the payload length", i)
		}
		return nil
	}
	ip := s[in.l3:in.l4]
	if be16(ip[2:]) != len(s)-in.l3 {
		return fmt.Errorf("segment %d: IPv4 total length %d; want %d", i, be16(ip[2:]), len(s)-in.l3)
	}
	if want := uint16(be16(frame[in.l3+4:]) + i); uint16(be16(ip[4:])) != want {
		return fmt.Errorf("segment %d: IPv4 ID %d; want %d", i, be16(ip[4:]), want)
	}
	if refSum(ip, 0) != 0xffff {
		return fmt.Errorf("segment %d: IPv4 header checksum does not verify", i)
	}
	if !bytes.Equal(ip[6:10], frame[in.l3+6:in.l3+10]) || !bytes.Equal(ip[12:], frame[in.l3+12:in.l4]) || ip[0] != frame[in.l3] || ip[1] != frame[in.l3+1] {
		return fmt.Errorf("segment %d: IPv4 header changed beyond length, ID and checksum", i)
	}
	return nil
}

// verifyUFO checks IP fragments: they reassemble to the datagram, whose
// UDP checksum verifies.
func verifyUFO(h Hdr, frame []byte, segs [][]byte, in view) error {
	mss := int(h.GSOSize)
	dg := frame[in.l4:]
	if n := (len(dg) + mss - 1) / mss; len(segs) != n {
		return fmt.Errorf("%d fragments; want %d", len(segs), n)
	}
	var joined []byte
	var id uint32
	for i, s := range segs {
		last := i == len(segs)-1
		sv, err := inspect(s)
		if err != nil {
			return fmt.Errorf("fragment %d: %v", i, err)
		}
		if !bytes.Equal(s[:in.l3], frame[:in.l3]) {
			return fmt.Errorf("fragment %d: link header changed", i)
		}
		data := s[sv.l4:]
		if sv.fragOff != len(joined) || sv.more == last || len(data) > mss || (!last && len(data) != mss) {
			return fmt.Errorf("fragment %d: offset %d more %v length %d; want offset %d", i, sv.fragOff, sv.more, len(data), len(joined))
		}
		if in.v6 {
			if !sv.frag || sv.fragID == 0 || (i > 0 && sv.fragID != id) {
				return fmt.Errorf("fragment %d: fragment header missing or ID %#x not shared", i, sv.fragID)
			}
			id = sv.fragID
			if be16(s[in.l3+4:]) != len(s)-in.l3-40 {
				return fmt.Errorf("fragment %d: IPv6 payload length", i)
			}
		} else {
			ip := s[in.l3:sv.l4]
			if be16(ip[2:]) != len(s)-in.l3 || be16(ip[4:]) != be16(frame[in.l3+4:]) || refSum(ip, 0) != 0xffff {
				return fmt.Errorf("fragment %d: IPv4 length, ID or checksum wrong", i)
			}
		}
		joined = append(joined, data...)
	}
	if len(joined) != len(dg) || !bytes.Equal(joined[:6], dg[:6]) || !bytes.Equal(joined[8:], dg[8:]) {
		return fmt.Errorf("fragments do not reassemble to the datagram")
	}
	if refSum(joined, refPseudo(frame, in, 17, len(joined))) != 0xffff || be16(joined[6:]) == 0 {
		return fmt.Errorf("reassembled UDP checksum does not verify")
	}
	return nil
}
