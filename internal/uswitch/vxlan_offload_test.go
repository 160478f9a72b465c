//go:build linux

package uswitch

import (
	"bytes"
	"encoding/binary"
	"os"
	"syscall"
	"testing"

	"github.com/umlkit/umlkit/internal/gso"
)

// partialTCP4 is an IPv4 TCP frame whose checksum is left partial, as
// Linux's stack hands it to a device with checksum offload.
func partialTCP4(payload int) []byte {
	return tcpSegment(macA, macB, payload, 1448)[gso.HdrLen:]
}

// partialUDP6 is the same for UDP over IPv6.
func partialUDP6(payload int) []byte {
	f := make([]byte, 14+40+8+payload)
	copy(f, macB[:])
	copy(f[6:], macA[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(8+payload))
	ip[6], ip[7] = 17, 64
	ip[8], ip[23] = 0xfd, 1
	ip[24], ip[39] = 0xfd, 2
	u := ip[40:]
	binary.BigEndian.PutUint16(u[0:], 5353)
	binary.BigEndian.PutUint16(u[2:], 4242)
	binary.BigEndian.PutUint16(u[4:], uint16(8+payload))
	for i := range payload {
		u[8+i] = byte(i*13 + 1)
	}
	ps := gso.PseudoHeaderSum6([16]byte(ip[8:24]), [16]byte(ip[24:40]), 17, 8+payload)
	binary.BigEndian.PutUint16(u[6:], foldSum(ps))
	return f
}

// finished is frame with its checksum finished by the gso package (a
// NEEDS_CSUM header at csumStart/csumOffset), the reference.
func finished(t *testing.T, frame []byte, csumStart, csumOffset uint16) []byte {
	t.Helper()
	out, err := (&gso.Segmenter{}).Segment(gso.Hdr{Flags: gso.FlagNeedsCsum, CsumStart: csumStart, CsumOffset: csumOffset}, bytes.Clone(frame))
	if err != nil || len(out) != 1 {
		t.Fatalf("Segment: %v (%d frames)", err, len(out))
	}
	return out[0]
}

func TestCompletePartial(t *testing.T) {
	for _, tt := range []struct {
		name             string
		frame            []byte
		start, csumField uint16
	}{
		{"tcp4", partialTCP4(100), 34, 16},
		{"tcp4 odd", partialTCP4(1), 34, 16},
		{"udp6", partialUDP6(333), 54, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := finished(t, tt.frame, tt.start, tt.csumField)
			f := bytes.Clone(tt.frame)
			if !completePartial(f) {
				t.Fatal("completePartial = false on a partial checksum")
			}
			if !bytes.Equal(f, want) {
				t.Fatalf("completed checksum %x; the gso package makes %x", f[tt.start+tt.csumField:tt.start+tt.csumField+2], want[tt.start+tt.csumField:tt.start+tt.csumField+2])
			}
			if completePartial(f) {
				t.Error("completePartial changed a finished frame")
			}
			// A checksum that is wrong in any other way is the
			// receiver's to drop.
			bad := bytes.Clone(tt.frame)
			bad[len(bad)-1] ^= 0xff
			bad[tt.start+tt.csumField] ^= 0x01
			if completePartial(bad) {
				t.Error("completePartial changed a corrupt checksum")
			}
		})
	}
	t.Run("vlan", func(t *testing.T) {
		f := partialTCP4(64)
		tagged := append(append(bytes.Clone(f[:12]), 0x81, 0x00, 0x00, 0x05), f[12:]...)
		if !completePartial(tagged) {
			t.Fatal("tagged frame not completed")
		}
		want := finished(t, f, 34, 16)
		if !bytes.Equal(tagged[38+16:38+18], want[34+16:34+18]) {
			t.Errorf("tagged checksum %x; want %x", tagged[38+16:38+18], want[34+16:34+18])
		}
	})
	t.Run("fragment", func(t *testing.T) {
		f := partialTCP4(64)
		binary.BigEndian.PutUint16(f[14+6:], 0x2000) // MF
		if completePartial(f) {
			t.Error("completed a fragment")
		}
	})
	for _, n := range []int{0, 13, 14, 20, 34, 53} {
		if completePartial(partialTCP4(100)[:n]) {
			t.Errorf("completed a frame cut to %d bytes", n)
		}
	}
}

// FuzzCompletePartial: neither completePartial nor tsoHdr panics; a TSO
// header tsoHdr makes is one the gso package cuts into standard frames; a
// frame completePartial completes then carries a valid checksum, and
// completing again changes nothing.
func FuzzCompletePartial(f *testing.F) {
	f.Add(partialTCP4(100))
	f.Add(partialTCP4(1))
	f.Add(partialUDP6(20))
	f.Add(partialTCP4(3000))
	f.Add(tcp6Segment(3000))
	f.Add(plainFrame(macA, bc, 60))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if h, ok := tsoHdr(frame); ok {
			segs, err := (&gso.Segmenter{}).Segment(h, frame)
			if err != nil {
				t.Fatalf("tsoHdr = %+v, which Segment refuses: %v", h, err)
			}
			for _, s := range segs {
				if len(s) > 1518 {
					t.Fatalf("tsoHdr = %+v makes a %d-byte segment", h, len(s))
				}
			}
		}
		if !completePartial(frame) {
			return
		}
		again := bytes.Clone(frame)
		if completePartial(again) || !bytes.Equal(again, frame) {
			t.Fatal("a completed frame was completed again")
		}
	})
}

// TestCompletePartialGolden: a TCP SYN as Linux's vxlan device delivered
// it through a veth to a UDP socket in another namespace (host B's own
// stack connecting to a host behind the tunnel): its checksum fails as
// received and verifies once completed.
func TestCompletePartialGolden(t *testing.T) {
	f, err := os.ReadFile("testdata/linux-vxlan-partial-syn.bin")
	if err != nil {
		t.Fatal(err)
	}
	ip := f[14:]
	l4 := ip[20:binary.BigEndian.Uint16(ip[2:])]
	ps := gso.PseudoHeaderSum4([4]byte(ip[12:16]), [4]byte(ip[16:20]), 6, len(l4))
	if gso.Checksum(l4, ps) == 0 {
		t.Fatal("the captured SYN's checksum already verifies")
	}
	if !completePartial(f) {
		t.Fatal("completePartial = false")
	}
	if c := gso.Checksum(l4, ps); c != 0 {
		t.Errorf("completed checksum does not verify (sum %#04x)", c)
	}
}

// TestTSOHdr: a TCP frame larger than a standard one with a partial
// checksum is described as a TSO frame cut to standard frames, the same
// ones the gso package makes from a guest's header with that segment size;
// other frames are not.
func TestTSOHdr(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		seg := tcpSegment(macA, macB, 20000, 1460)
		frame := seg[gso.HdrLen:]
		want := gso.Hdr{Flags: gso.FlagNeedsCsum, GSOType: gso.TypeTCPv4, HdrLen: 54, GSOSize: 1460, CsumStart: 34, CsumOffset: 16}
		if v6 {
			frame = tcp6Segment(20000)
			want = gso.Hdr{Flags: gso.FlagNeedsCsum, GSOType: gso.TypeTCPv6, HdrLen: 74, GSOSize: 1440, CsumStart: 54, CsumOffset: 16}
		}
		h, ok := tsoHdr(frame)
		if !ok || h != want {
			t.Fatalf("v6 %v: tsoHdr = %+v, %v; want %+v", v6, h, ok, want)
		}
		if !v6 {
			ref, _ := gso.ParseHdr(seg)
			if ref.GSOSize != h.GSOSize {
				t.Fatalf("reference mss %d", ref.GSOSize)
			}
		}
		segs, err := (&gso.Segmenter{}).Segment(h, frame)
		if err != nil || len(segs) != (20000+int(h.GSOSize)-1)/int(h.GSOSize) {
			t.Fatalf("v6 %v: Segment = %d segments, %v", v6, len(segs), err)
		}
		for i, s := range segs {
			if len(s) > 1514 {
				t.Errorf("v6 %v: segment %d is %d bytes", v6, i, len(s))
			}
			if completePartial(bytes.Clone(s)) {
				t.Errorf("v6 %v: segment %d has a partial checksum", v6, i)
			}
		}
	}
	for name, f := range map[string][]byte{
		"standard size": partialTCP4(1460),
		"complete csum": finished(t, partialTCP4(3000), 34, 16),
		"udp":           partialUDP6(3000),
		"short":         partialTCP4(3000)[:1000],
	} {
		if h, ok := tsoHdr(f); ok {
			t.Errorf("%s: tsoHdr = %+v", name, h)
		}
	}
}

// tcp6Segment is a partial-checksum TCP frame over IPv6 with payload
// bytes.
func tcp6Segment(payload int) []byte {
	f := make([]byte, 14+40+20+payload)
	copy(f, macB[:])
	copy(f[6:], macA[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(20+payload))
	ip[6], ip[7] = 6, 64
	ip[8], ip[23] = 0xfd, 1
	ip[24], ip[39] = 0xfd, 2
	tc := ip[40:]
	binary.BigEndian.PutUint16(tc[0:], 40000)
	binary.BigEndian.PutUint16(tc[2:], 5001)
	tc[12], tc[13] = 5<<4, 0x10
	for i := range payload {
		tc[20+i] = byte(i * 3)
	}
	ps := gso.PseudoHeaderSum6([16]byte(ip[8:24]), [16]byte(ip[24:40]), 6, 20+payload)
	binary.BigEndian.PutUint16(tc[16:], foldSum(ps))
	return f
}

// TestVxlanOffloads: frames whose sender left its offloads to the NIC (a
// partial checksum, an unsegmented TSO packet) reach a plain port as
// standard frames with complete checksums and a vnet port whole behind a
// TSO header.
func TestVxlanOffloads(t *testing.T) {
	r, sw, r1, _ := vxRig(t, Config{}, false)
	plain, vn := dial(t, r), dialVnet(t, r)
	// Learn R1 and both ports.
	r1.send(sw, 42, plainFrame(macR1, bc, 60))
	expectFrame(t, plain, plainFrame(macR1, bc, 60))
	expectFrame(t, vn, append(make([]byte, gso.HdrLen), plainFrame(macR1, bc, 60)...))
	plain.Send(plainFrame(macA, macR1, 60))
	r1.expect(42, plainFrame(macA, macR1, 60))
	vn.Send(append(make([]byte, gso.HdrLen), plainFrame(macC, macR1, 60)...))
	r1.expect(42, plainFrame(macC, macR1, 60))

	small := partialTCP4(500)
	copy(small, macA[:]) // to the plain port
	copy(small[6:], macR1[:])
	r1.send(sw, 42, small)
	expectFrame(t, plain, finished(t, small, 34, 16))

	big := tcpSegment(macR1, macC, 20000, 1460)
	r1.send(sw, 42, big[gso.HdrLen:])
	h, _ := tsoHdr(big[gso.HdrLen:])
	var hb [gso.HdrLen]byte
	h.Put(hb[:])
	expectFrame(t, vn, append(hb[:], big[gso.HdrLen:]...))

	bigA := tcpSegment(macR1, macA, 20000, 1460)
	r1.send(sw, 42, bigA[gso.HdrLen:])
	want, err := (&gso.Segmenter{}).Segment(h, bigA[gso.HdrLen:])
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		expectFrame(t, plain, w)
	}
	r.sigs <- syscall.SIGUSR1
	r.waitOut(t, "offloads finished: 1 checksums, 2 TSO frames\n")
}
