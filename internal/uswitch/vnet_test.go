//go:build linux

package uswitch

import (
	"bytes"
	"encoding/binary"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/gso"
	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/uswitch/switchtest"
)

// dialVnet attaches a client that asks for the vnet extension.
func dialVnet(t *testing.T, r *rig) *switchtest.Client {
	t.Helper()
	a := switchtest.UMLAddr()
	a.SetVnet()
	c, err := switchtest.Dial(r.ctl, &switchtest.Options{Addr: &a})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tcpSegment is a vnet datagram from src to dst: a TSO segment of an IPv4
// TCP stream with payload bytes, its checksum partial (the pseudo-header
// sum in the checksum field), as a guest's TAP hands it over.
func tcpSegment(src, dst [6]byte, payload int, mss uint16) []byte {
	const eth, ip, tcp = 14, 20, 20
	f := make([]byte, eth+ip+tcp+payload)
	copy(f, dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	h := f[eth:]
	h[0], h[8], h[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(h[2:], uint16(ip+tcp+payload))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	copy(h[12:], []byte{10, 77, 0, 1, 10, 77, 0, 2})
	var sum uint32
	for i := 0; i < ip; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	tc := h[ip:]
	binary.BigEndian.PutUint16(tc[0:], 40000)
	binary.BigEndian.PutUint16(tc[2:], 5001)
	binary.BigEndian.PutUint32(tc[4:], 1000)
	tc[12], tc[13] = 5<<4, 0x18 // PSH|ACK
	binary.BigEndian.PutUint16(tc[14:], 65535)
	for i := range payload {
		tc[tcp+i] = byte(i * 7)
	}
	// Pseudo-header sum (not inverted), as CHECKSUM_PARTIAL leaves it.
	ps := uint32(binary.BigEndian.Uint16(h[12:])) + uint32(binary.BigEndian.Uint16(h[14:])) +
		uint32(binary.BigEndian.Uint16(h[16:])) + uint32(binary.BigEndian.Uint16(h[18:])) + 6 + uint32(tcp+payload)
	for ps > 0xffff {
		ps = ps>>16 + ps&0xffff
	}
	binary.BigEndian.PutUint16(tc[16:], uint16(ps))
	hdr := make([]byte, gso.HdrLen)
	gso.Hdr{Flags: gso.FlagNeedsCsum, GSOType: gso.TypeTCPv4, HdrLen: eth + ip + tcp, GSOSize: mss, CsumStart: eth + ip, CsumOffset: 16}.Put(hdr)
	return append(hdr, f...)
}

func plainFrame(src, dst [6]byte, n int) []byte {
	f := make([]byte, n)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5
	return f
}

// TestVnetExtension: two vnet ports and a plain one. Between the vnet
// ports a 64 KiB segment passes unchanged; the plain port gets the
// segments software GSO makes; plain frames reach vnet ports behind a zero
// header; a bad header is dropped and counted.
func TestVnetExtension(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b, c := dialVnet(t, r), dialVnet(t, r), dial(t, r)
	if !a.Switch.HasVnet() || !b.Switch.HasVnet() {
		t.Fatal("the switch did not take the vnet extension")
	}
	if c.Switch.HasVnet() {
		t.Fatal("a plain client's reply is marked")
	}
	zero := make([]byte, gso.HdrLen)
	// Learn all three (c's broadcast reaches a and b behind a zero header).
	bcast := plainFrame(macC, bc, 60)
	if err := c.Send(bcast); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, a, append(zero, bcast...))
	expectFrame(t, b, append(zero, bcast...))
	for _, x := range []struct {
		cl  *switchtest.Client
		mac [6]byte
	}{{a, macA}, {b, macB}} {
		if err := x.cl.Send(append(zero, plainFrame(x.mac, macC, 60)...)); err != nil {
			t.Fatal(err)
		}
		expectFrame(t, c, plainFrame(x.mac, macC, 60))
	}

	seg := tcpSegment(macA, macB, 60000, 1448)
	if err := a.Send(seg); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, b, seg)
	expectNothing(t, c)

	toC := tcpSegment(macA, macC, 60000, 1448)
	if err := a.Send(toC); err != nil {
		t.Fatal(err)
	}
	h, _ := gso.ParseHdr(toC)
	want, err := (&gso.Segmenter{}).Segment(h, toC[gso.HdrLen:])
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != (60000+1447)/1448 {
		t.Fatalf("Segment made %d segments", len(want))
	}
	for i, w := range want {
		buf := make([]byte, 70000)
		n, err := c.Recv(buf, 2*time.Second)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], w) {
			t.Fatalf("segment %d differs: %d bytes, want %d", i, n, len(w))
		}
	}
	expectNothing(t, b)

	bad := bytes.Clone(toC)
	binary.LittleEndian.PutUint16(bad[4:], 0) // gso_size 0 with a GSO type
	if err := a.Send(bad); err != nil {
		t.Fatal(err)
	}
	r.waitErr(t, "Bad vnet frame dropped")
	expectNothing(t, c)

	// Oversized for a vnet port: dropped.
	if err := a.Send(make([]byte, switchproto.MaxVnetDatagram+1)); err == nil {
		r.waitErr(t, "Oversized datagram (more than 65802 bytes) dropped")
	}
	r.sigs <- syscall.SIGUSR1
	r.waitOut(t, "Switch: ")
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Count(r.out.String(), ", vnet): rx") == 2 }); err != nil {
		t.Fatalf("SIGUSR1 shows %d vnet ports, want 2:\n%s", strings.Count(r.out.String(), ", vnet): rx"), r.out.String())
	}
}
