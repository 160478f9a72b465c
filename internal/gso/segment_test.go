package gso

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

var tsOpts = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP timestamps

// segmentCases are well-formed frames; every one must segment and verify.
var segmentCases = []struct {
	name  string
	p     pkt
	typ   uint8
	mss   int
	flags uint8 // replaces NEEDS_CSUM when set
	segs  int   // expected frames
}{
	{"tcp4 64K", pkt{n: 65535 - 40, id: 7, df: true, seq: 12345}, TypeTCPv4, 1448, 0, 46},
	{"tcp4 short last", pkt{n: 3*1400 + 1, seq: 0xffffff00}, TypeTCPv4, 1400, 0, 4},
	{"tcp4 exact", pkt{n: 3 * 1400}, TypeTCPv4, 1400, 0, 3},
	{"tcp4 id wraps", pkt{n: 5000, id: 0xffff}, TypeTCPv4, 1000, 0, 5},
	{"tcp4 fin psh", pkt{n: 5000, tcpFlags: tcpFIN | tcpPSH}, TypeTCPv4, 1448, 0, 4},
	{"tcp4 cwr ecn", pkt{n: 5000, tcpFlags: tcpCWR | 0x40, ecn: 3}, TypeTCPv4 | TypeECN, 1448, 0, 4},
	{"tcp4 cwr", pkt{n: 5000, tcpFlags: tcpCWR}, TypeTCPv4, 1448, 0, 4},
	{"tcp4 ip and tcp options", pkt{n: 9000, ipOpts: []byte{0x94, 4, 0, 0, 1, 1, 1, 0}, tcpOpts: tsOpts}, TypeTCPv4, 1428, 0, 7},
	{"tcp4 vlan", pkt{n: 9000, tpids: []uint16{etherTypeVLAN}}, TypeTCPv4, 1448, 0, 7},
	{"tcp4 qinq", pkt{n: 9000, tpids: []uint16{etherTypeQinQ, etherTypeVLAN}}, TypeTCPv4, 1448, 0, 7},
	{"tcp4 odd mss", pkt{n: 4001}, TypeTCPv4, 999, 0, 5},
	{"tcp4 no csum", pkt{n: 6000}, TypeTCPv4, 1448, FlagDataValid, 5},
	{"tcp4 fits", pkt{n: 1448}, TypeTCPv4, 1448, 0, 1},
	{"tcp4 fits with options", pkt{n: 1436, tcpOpts: tsOpts}, TypeTCPv4, 1448, 0, 1},
	{"tcp4 mss 1", pkt{n: 200}, TypeTCPv4, 1, 0, 200},
	{"tcp6", pkt{v6: true, n: 65535 - 20, seq: 1}, TypeTCPv6, 1428, 0, 46},
	{"tcp6 hop-by-hop", pkt{v6: true, hbh: true, n: 8000, tcpFlags: tcpFIN}, TypeTCPv6, 1420, 0, 6},
	{"tcp6 vlan cwr options", pkt{v6: true, n: 8000, tcpFlags: tcpCWR, tpids: []uint16{etherTypeVLAN}, tcpOpts: tsOpts}, TypeTCPv6 | TypeECN, 1416, 0, 6},
	{"tcp6 no csum", pkt{v6: true, n: 3000}, TypeTCPv6, 1000, 0xff &^ FlagNeedsCsum, 3},
	{"ufo4", pkt{udp: true, n: 8000, id: 77, df: true}, TypeUDP, 1480, 0, 6},
	{"ufo4 options", pkt{udp: true, n: 3000, ipOpts: []byte{1, 1, 1, 0}}, TypeUDP, 1472, 0, 3},
	{"ufo4 no csum", pkt{udp: true, n: 3000}, TypeUDP, 1480, FlagDataValid, 3},
	{"ufo4 64K", pkt{udp: true, n: 65535 - 28}, TypeUDP, 1480, 0, 45},
	{"ufo4 fits", pkt{udp: true, n: 1472}, TypeUDP, 1480, 0, 1},
	{"ufo6", pkt{v6: true, udp: true, n: 8000}, TypeUDP, 1448, 0, 6},
	{"ufo6 vlan", pkt{v6: true, udp: true, n: 3000, tpids: []uint16{etherTypeVLAN}}, TypeUDP, 1448, 0, 3},
	{"uso4", pkt{udp: true, n: 8000, id: 9}, TypeUDPL4, 1472, 0, 6},
	{"uso4 128", pkt{udp: true, n: 12800}, TypeUDPL4, 100, 0, 128},
	{"uso6", pkt{v6: true, udp: true, n: 8000}, TypeUDPL4, 1452, 0, 6},
	{"uso6 hop-by-hop", pkt{v6: true, hbh: true, udp: true, n: 5000}, TypeUDPL4, 1000, 0, 5},
	{"uso4 fits", pkt{udp: true, n: 1472}, TypeUDPL4, 1472, 0, 1},
	{"none tcp4", pkt{n: 1000}, TypeNone, 0, 0, 1},
	{"none tcp6", pkt{v6: true, n: 1111}, TypeNone, 0, 0, 1},
	{"none udp4 odd", pkt{udp: true, n: 1001}, TypeNone, 0, 0, 1},
	{"none udp6 vlan", pkt{v6: true, udp: true, n: 500, tpids: []uint16{etherTypeVLAN}}, TypeNone, 0, 0, 1},
	{"none plain", pkt{n: 100}, TypeNone, 0, FlagDataValid, 1},
	{"none empty payload", pkt{}, TypeNone, 0, 0, 1},
}

func TestSegment(t *testing.T) {
	var s Segmenter
	for _, c := range segmentCases {
		t.Run(c.name, func(t *testing.T) {
			frame, _ := c.p.frame()
			h := c.p.hdr(c.typ, c.mss)
			if c.flags != 0 {
				h.Flags = c.flags
			}
			orig := append([]byte(nil), frame...)
			segs, err := s.Segment(h, frame)
			if err != nil {
				t.Fatalf("Segment(%+v) = %v", h, err)
			}
			if len(segs) != c.segs {
				t.Errorf("Segment made %d frames; want %d", len(segs), c.segs)
			}
			if err := verify(h, frame, segs); err != nil {
				t.Error(err)
			}
			if string(orig) != string(frame) {
				t.Error("Segment changed its input")
			}
		})
	}
}

// TestSegmentFields spells out a few results the verifier derives.
func TestSegmentFields(t *testing.T) {
	var s Segmenter
	p := pkt{n: 2500, id: 0xfffe, seq: 0xfffffc00, tcpFlags: tcpFIN | tcpPSH | tcpCWR}
	frame, l4 := p.frame()
	segs, err := s.Segment(p.hdr(TypeTCPv4|TypeECN, 1000), frame)
	if err != nil {
		t.Fatal(err)
	}
	type fields struct {
		totLen, id int
		seq        uint32
		flags      byte
	}
	want := []fields{
		{1040, 0xfffe, 0xfffffc00, 0x10 | tcpCWR},
		{1040, 0xffff, 0xffffffe8, 0x10},
		{540, 0, 976, 0x10 | tcpFIN | tcpPSH},
	}
	if len(segs) != len(want) {
		t.Fatalf("%d segments; want %d", len(segs), len(want))
	}
	for i, s := range segs {
		got := fields{be16(s[16:]), be16(s[18:]), binary.BigEndian.Uint32(s[l4+4:]), s[l4+13]}
		if got != want[i] {
			t.Errorf("segment %d: %+v; want %+v", i, got, want[i])
		}
	}
}

// TestZeroChecksum: a sum of 0 is sent as 0xffff in UDP and in checksums
// completed without GSO, but stays 0 in TSO segments (the kernel's rules).
func TestZeroChecksum(t *testing.T) {
	for _, c := range []struct {
		name string
		p    pkt
		typ  uint8
		mss  int
		want uint16
	}{
		{"tso4", pkt{n: 4000}, TypeTCPv4, 1000, 0},
		{"tso6", pkt{v6: true, n: 4000}, TypeTCPv6, 1000, 0},
		{"uso4", pkt{udp: true, n: 4000}, TypeUDPL4, 1000, 0xffff},
		{"ufo4", pkt{udp: true, n: 4000}, TypeUDP, 1000, 0xffff},
		{"none tcp", pkt{n: 1000}, TypeNone, 0, 0xffff},
		{"none udp", pkt{udp: true, n: 1000}, TypeNone, 0, 0xffff},
	} {
		t.Run(c.name, func(t *testing.T) {
			frame, _ := c.p.frame()
			h := c.p.hdr(c.typ, c.mss)
			zeroCsum(&h, frame)
			var s Segmenter
			segs, err := s.Segment(h, frame)
			if err != nil {
				t.Fatal(err)
			}
			seg := segs[len(segs)-1]
			if c.typ == TypeUDP {
				seg = segs[0]
			}
			if got := binary.BigEndian.Uint16(seg[int(h.CsumStart)+int(h.CsumOffset):]); got != c.want {
				t.Errorf("checksum %#04x; want %#04x", got, c.want)
			}
			if err := verify(h, frame, segs); err != nil {
				t.Error(err)
			}
		})
	}
}

// zeroCsum changes the last payload word of frame so that the checksum of
// the last segment (the only one, or UFO's first fragment) sums to 0.
func zeroCsum(h *Hdr, frame []byte) {
	var s Segmenter
	segs, err := s.Segment(*h, frame)
	if err != nil {
		panic(err)
	}
	seg := segs[len(segs)-1]
	if h.GSOType == TypeUDP {
		seg = segs[0]
	}
	c := binary.BigEndian.Uint16(seg[int(h.CsumStart)+int(h.CsumOffset):])
	w := frame[len(frame)-2:]
	binary.BigEndian.PutUint16(w, ^fold(uint64(^binary.BigEndian.Uint16(w))+uint64(^c)))
}

func TestSegmentErrors(t *testing.T) {
	tcp := func(edit func(h *Hdr, f []byte)) func() (Hdr, []byte) {
		return func() (Hdr, []byte) {
			p := pkt{n: 5000}
			f, _ := p.frame()
			h := p.hdr(TypeTCPv4, 1448)
			edit(&h, f)
			return h, f
		}
	}
	build := func(p pkt, typ uint8, mss int, edit func(h *Hdr, f []byte)) func() (Hdr, []byte) {
		return func() (Hdr, []byte) {
			f, _ := p.frame()
			h := p.hdr(typ, mss)
			if edit != nil {
				edit(&h, f)
			}
			return h, f
		}
	}
	for _, c := range []struct {
		name  string
		input func() (Hdr, []byte)
		class error
	}{
		{"short frame", func() (Hdr, []byte) { return Hdr{}, make([]byte, 13) }, ErrFrame},
		{"too long", func() (Hdr, []byte) { return Hdr{}, make([]byte, MaxFrameLen+1) }, ErrLimit},
		{"gso type 2", tcp(func(h *Hdr, f []byte) { h.GSOType = 2 }), ErrHeader},
		{"none ecn", tcp(func(h *Hdr, f []byte) { h.GSOType = TypeECN }), ErrHeader},
		{"uso ecn", build(pkt{udp: true, n: 3000}, TypeUDPL4|TypeECN, 1000, nil), ErrHeader},
		{"gso_size 0", tcp(func(h *Hdr, f []byte) { h.GSOSize = 0 }), ErrHeader},
		{"hdr_len beyond", tcp(func(h *Hdr, f []byte) { h.HdrLen = uint16(len(f) + 1) }), ErrHeader},
		{"csum beyond", tcp(func(h *Hdr, f []byte) { h.CsumOffset = uint16(len(f)) - h.CsumStart - 1 }), ErrHeader},
		{"csum_start 19", tcp(func(h *Hdr, f []byte) { h.GSOType = TypeNone; h.CsumStart = 19 }), ErrHeader},
		{"csum_start not L4", tcp(func(h *Hdr, f []byte) { h.CsumStart += 4 }), ErrHeader},
		{"csum_offset not the field", tcp(func(h *Hdr, f []byte) { h.CsumOffset = 6 }), ErrHeader},
		{"not IP", tcp(func(h *Hdr, f []byte) { f[12] = 0x88 }), ErrFrame},
		{"IPv4 as TCPv6", tcp(func(h *Hdr, f []byte) { h.GSOType = TypeTCPv6 }), ErrFrame},
		{"IPv6 as TCPv4", build(pkt{v6: true, n: 5000}, TypeTCPv4, 1000, nil), ErrFrame},
		{"IP version", tcp(func(h *Hdr, f []byte) { f[14] = 0x65 }), ErrFrame},
		{"IHL 4", tcp(func(h *Hdr, f []byte) { f[14] = 0x44 }), ErrFrame},
		{"IPv4 length short", tcp(func(h *Hdr, f []byte) { f[17] -= 4 }), ErrFrame},
		{"IPv4 length long", tcp(func(h *Hdr, f []byte) { f[17] += 4 }), ErrFrame},
		{"IPv4 fragment", tcp(func(h *Hdr, f []byte) { f[20] |= 0x20 }), ErrFrame},
		{"UDP in TSO", tcp(func(h *Hdr, f []byte) { f[23] = protoUDP }), ErrFrame},
		{"TCP in UFO", tcp(func(h *Hdr, f []byte) { h.GSOType = TypeUDP }), ErrFrame},
		{"TCP data offset 4", tcp(func(h *Hdr, f []byte) { f[46] = 0x40 }), ErrFrame},
		{"TCP data offset beyond", build(pkt{n: 30}, TypeTCPv4, 10, func(h *Hdr, f []byte) { f[46] = 0xf0 }), ErrFrame},
		{"TCP options fill the gap", build(pkt{n: 1448, tcpOpts: tsOpts}, TypeTCPv4, 1448, nil), ErrFrame},
		{"IPv6 length", build(pkt{v6: true, n: 5000}, TypeTCPv6, 1000, func(h *Hdr, f []byte) { f[19]++ }), ErrFrame},
		{"IPv6 fragment header", build(pkt{v6: true, n: 5000}, TypeTCPv6, 1000, func(h *Hdr, f []byte) { f[20] = protoFragment }), ErrFrame},
		{"IPv6 unknown next header", build(pkt{v6: true, n: 5000}, TypeTCPv6, 1000, func(h *Hdr, f []byte) { f[20] = 59 }), ErrFrame},
		{"IPv6 extension beyond", build(pkt{v6: true, hbh: true, n: 10}, TypeTCPv6, 1, func(h *Hdr, f []byte) { f[55] = 200 }), ErrFrame},
		{"UDP length", build(pkt{udp: true, n: 3000}, TypeUDPL4, 1000, func(h *Hdr, f []byte) { f[39]++ }), ErrFrame},
		{"USO without NEEDS_CSUM", build(pkt{udp: true, n: 3000}, TypeUDPL4, 1000, func(h *Hdr, f []byte) { h.Flags = 0 }), ErrHeader},
		{"USO 129 segments", build(pkt{udp: true, n: 12801}, TypeUDPL4, 100, nil), ErrLimit},
		{"UFO odd gso_size", build(pkt{udp: true, n: 3000}, TypeUDP, 1001, nil), ErrHeader},
		{"UFO6 extension header", build(pkt{v6: true, hbh: true, udp: true, n: 3000}, TypeUDP, 1000, nil), ErrLimit},
		{"too many segments", build(pkt{n: 40000}, TypeTCPv4, 16, nil), ErrLimit},
		{"headers too long", build(pkt{n: 3000, tpids: make([]uint16, 60)}, TypeTCPv4, 1000, func(h *Hdr, f []byte) {
			for i := 12; i < 12+4*60; i += 4 {
				binary.BigEndian.PutUint16(f[i:], etherTypeVLAN)
			}
		}), ErrLimit},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, f := c.input()
			var s Segmenter
			segs, err := s.Segment(h, f)
			if !errors.Is(err, c.class) {
				t.Errorf("Segment = %d frames, %v; want %v", len(segs), err, c.class)
			}
		})
	}
}

func TestHdrRoundTrip(t *testing.T) {
	h := Hdr{Flags: FlagNeedsCsum, GSOType: TypeTCPv6 | TypeECN, HdrLen: 86, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}
	b := make([]byte, HdrLen)
	h.Put(b)
	want := []byte{1, 0x84, 86, 0, 0x94, 5, 54, 0, 16, 0} // little-endian host
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 && string(b) != string(want) {
		t.Errorf("Put = % x; want % x", b, want)
	}
	got, err := ParseHdr(b)
	if err != nil || got != h {
		t.Errorf("ParseHdr(Put(h)) = %+v, %v; want %+v", got, err, h)
	}
	if _, err := ParseHdr(b[:HdrLen-1]); !errors.Is(err, ErrShortHdr) {
		t.Errorf("ParseHdr(9 bytes) = %v; want ErrShortHdr", err)
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071 §3's example words sum to ddf2.
	ex := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Sum(ex); got != 0xddf2 {
		t.Errorf("Sum(RFC 1071 example) = %#04x; want 0xddf2", got)
	}
	if got := Checksum(ex, 0); got != ^uint16(0xddf2) {
		t.Errorf("Checksum(RFC 1071 example) = %#04x; want %#04x", got, ^uint16(0xddf2))
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for n := 0; n < 300; n++ {
		for _, b := range [][]byte{buf[:n], buf[len(buf)-n:], buf[1000 : 1000+n*9]} {
			if got, want := uint32(Sum(b)), refSum(b, 0); got != want && !(got == 0 && want == 0xffff) {
				t.Fatalf("Sum(%d bytes) = %#04x; want %#04x", len(b), got, want)
			}
		}
	}
	// All ones: every 64-bit add carries.
	ff := make([]byte, 4096+7)
	for i := range ff {
		ff[i] = 0xff
	}
	for n := range ff {
		if got, want := uint32(Sum(ff[:n])), refSum(ff[:n], 0); got != want {
			t.Fatalf("Sum(%d bytes of ff) = %#04x; want %#04x", n, got, want)
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	p4 := PseudoHeaderSum4(testSrc4, testDst4, 6, 1234)
	want4 := refSum([]byte{10, 1, 2, 3, 10, 4, 5, 6, 0, 6, 0x04, 0xd2}, 0)
	if fold(uint64(p4)) != uint16(want4) {
		t.Errorf("PseudoHeaderSum4 = %#x; want %#x", p4, want4)
	}
	p6 := PseudoHeaderSum6(testSrc6, testDst6, 17, 70000)
	b := append(append(append([]byte{}, testSrc6[:]...), testDst6[:]...), 0, 1, 0x11, 0x70, 0, 0, 0, 17)
	if want6 := refSum(b, 0); fold(uint64(p6)) != uint16(want6) {
		t.Errorf("PseudoHeaderSum6 = %#x; want %#x", p6, want6)
	}
}

// TestSegmentNoAllocs: after the first call, Segment allocates nothing.
func TestSegmentNoAllocs(t *testing.T) {
	p := pkt{n: 65535 - 40}
	frame, _ := p.frame()
	h := p.hdr(TypeTCPv4, 1448)
	var s Segmenter
	if _, err := s.Segment(h, frame); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { s.Segment(h, frame) }); n != 0 {
		t.Errorf("Segment allocates %v times per call", n)
	}
	bad := h
	bad.GSOSize = 0
	if n := testing.AllocsPerRun(20, func() { s.Segment(bad, frame) }); n != 0 {
		t.Errorf("a rejected frame allocates %v times", n)
	}
}

func benchmarkSegment(b *testing.B, p pkt, typ uint8, mss int) {
	frame, _ := p.frame()
	h := p.hdr(typ, mss)
	var s Segmenter
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Segment(h, frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSegmentTCPv4_64K(b *testing.B) {
	benchmarkSegment(b, pkt{n: 65535 - 40}, TypeTCPv4, 1448)
}

func BenchmarkSegmentTCPv6_64K(b *testing.B) {
	benchmarkSegment(b, pkt{v6: true, n: 65535 - 20}, TypeTCPv6, 1428)
}

func BenchmarkSegmentUSO4_64K(b *testing.B) {
	benchmarkSegment(b, pkt{udp: true, n: 128 * 500}, TypeUDPL4, 500)
}

func BenchmarkSegmentCsum1500(b *testing.B) {
	benchmarkSegment(b, pkt{n: 1460}, TypeNone, 0)
}

func BenchmarkSum64K(b *testing.B) {
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Sum(buf)
	}
}
