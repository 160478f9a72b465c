//go:build linux

package gso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// kernelPair is a tap with vnet headers and offloads (a) and a plain tap
// (b) on one bridge in a network namespace of their own: a frame written
// to a comes out of b as the kernel's software GSO makes it.
type kernelPair struct {
	a, b *tuntap.Device
}

// newKernelPair builds the pair on a locked thread that unshares its
// network namespace; the thread is never unlocked, so it exits (rather
// than returning to the scheduler in the wrong namespace) when its
// goroutine ends at cleanup. The taps' fds work from any thread.
func newKernelPair(t *testing.T) *kernelPair {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	type result struct {
		p   *kernelPair
		err error
	}
	res := make(chan result)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		p, err := setupPair()
		res <- result{p, err}
		<-done
	}()
	r := <-res
	if r.err != nil {
		close(done)
		if errors.Is(r.err, unix.EPERM) || errors.Is(r.err, unix.EOPNOTSUPP) {
			testutil.Skip(t, "cannot set up taps on a bridge in a new network namespace: %v", r.err)
		}
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		r.p.a.Close()
		r.p.b.Close()
		close(done)
	})
	return r.p
}

func setupPair() (*kernelPair, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, os.NewSyscallError("unshare CLONE_NEWNET", err)
	}
	// No IPv6 on the links: no router or neighbour solicitations.
	for _, c := range []string{"all", "default"} {
		p := "/proc/sys/net/ipv6/conf/" + c + "/disable_ipv6"
		if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	a, err := tuntap.Open(tuntap.Config{Name: "gsoa", VnetHdr: true})
	if err != nil {
		return nil, err
	}
	if err := a.SetOffload(unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_UFO); err != nil {
		a.Close()
		return nil, err
	}
	b, err := tuntap.Open(tuntap.Config{Name: "gsob"})
	if err != nil {
		a.Close()
		return nil, err
	}
	if err := bridge("gsobr", "gsoa", "gsob"); err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	return &kernelPair{a: a, b: b}, nil
}

// bridge creates bridge br over the ports, all up, with the largest MTU a
// tap takes so that frames that are not GSO pass too.
func bridge(br string, ports ...string) error {
	brl := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: br}}
	if err := netlink.LinkAdd(brl); err != nil {
		return fmt.Errorf("add bridge %s: %w", br, err)
	}
	for _, name := range ports {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if err := netlink.LinkSetMTU(l, 65521); err != nil {
			return fmt.Errorf("set mtu of %s: %w", name, err)
		}
		if err := netlink.LinkSetMaster(l, brl); err != nil {
			return fmt.Errorf("enslave %s: %w", name, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
	}
	if err := netlink.LinkSetUp(brl); err != nil {
		return fmt.Errorf("set %s up: %w", br, err)
	}
	return nil
}

// send writes h and frame to tap a and returns the test's frames that come
// out of tap b until quiet for wait. A frame the tap refuses (EINVAL) gives
// no frames.
func (p *kernelPair) send(t *testing.T, h Hdr, frame []byte, wait time.Duration) [][]byte {
	t.Helper()
	msg := make([]byte, HdrLen+len(frame))
	h.Put(msg)
	copy(msg[HdrLen:], frame)
	if _, err := p.a.Write(msg); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			t.Fatalf("write to tap: %v", err)
		}
		return nil
	}
	var got [][]byte
	buf := make([]byte, 70000)
	for {
		p.b.File().SetReadDeadline(time.Now().Add(wait))
		n, err := p.b.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return got
			}
			t.Fatalf("read tap b: %v", err)
		}
		if n >= ethHdrLen && bytes.Equal(buf[6:12], testSrcMAC) {
			got = append(got, bytes.Clone(buf[:n]))
		}
	}
}

// kernelCase is one input written to the kernel and to Segment.
type kernelCase struct {
	name  string
	p     pkt
	typ   uint8
	mss   int
	flags uint8 // replaces h.Flags when set
	edit  func(*Hdr, []byte)
	// differs says why Segment refuses a frame the kernel sends.
	differs string
}

func kernelCases() []kernelCase {
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP timestamps
	return []kernelCase{
		{name: "tcp4", p: pkt{n: 65000 - 40, id: 100, df: true, seq: 1000}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 short last", p: pkt{n: 3*1400 + 17, id: 0xfffe, seq: 0xfffffff0}, typ: TypeTCPv4, mss: 1400},
		{name: "tcp4 fin psh", p: pkt{n: 5000, tcpFlags: tcpFIN | tcpPSH, df: true}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 cwr ecn", p: pkt{n: 5000, tcpFlags: tcpCWR | 0x40, ecn: 2}, typ: TypeTCPv4 | TypeECN, mss: 1448},
		{name: "tcp4 cwr", p: pkt{n: 5000, tcpFlags: tcpCWR}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 options", p: pkt{n: 10000, ipOpts: []byte{1, 1, 1, 0}, tcpOpts: ts, df: true}, typ: TypeTCPv4, mss: 1436},
		{name: "tcp4 vlan", p: pkt{n: 9000, tpids: []uint16{etherTypeVLAN}}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 qinq", p: pkt{n: 9000, tpids: []uint16{etherTypeQinQ, etherTypeVLAN}}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 odd mss", p: pkt{n: 4001}, typ: TypeTCPv4, mss: 999},
		{name: "tcp4 no csum", p: pkt{n: 6000}, typ: TypeTCPv4, mss: 1448, flags: FlagDataValid},
		{name: "tcp4 fits", p: pkt{n: 1448}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 fits options", p: pkt{n: 1440, tcpOpts: ts}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp6", p: pkt{v6: true, n: 65000 - 60, seq: 7}, typ: TypeTCPv6, mss: 1428},
		{name: "tcp6 hbh", p: pkt{v6: true, hbh: true, n: 8000, tcpFlags: tcpFIN}, typ: TypeTCPv6, mss: 1420},
		{name: "tcp6 vlan cwr", p: pkt{v6: true, n: 8000, tcpFlags: tcpCWR, tpids: []uint16{etherTypeVLAN}}, typ: TypeTCPv6 | TypeECN, mss: 1428},
		{name: "ufo4", p: pkt{udp: true, n: 8000, id: 77, df: true}, typ: TypeUDP, mss: 1480},
		{name: "ufo4 options", p: pkt{udp: true, n: 3000, id: 77, ipOpts: []byte{1, 1, 1, 0}}, typ: TypeUDP, mss: 1472},
		{name: "ufo4 no csum", p: pkt{udp: true, n: 3000, id: 78}, typ: TypeUDP, mss: 1480, flags: FlagDataValid},
		{name: "ufo6", p: pkt{v6: true, udp: true, n: 8000}, typ: TypeUDP, mss: 1448},
		{name: "uso4", p: pkt{udp: true, n: 8000, id: 9}, typ: TypeUDPL4, mss: 1472},
		{name: "uso6", p: pkt{v6: true, udp: true, n: 8000}, typ: TypeUDPL4, mss: 1452},
		{name: "none tcp4", p: pkt{n: 1000}, typ: TypeNone},
		{name: "none tcp6", p: pkt{v6: true, n: 1111}, typ: TypeNone},
		{name: "none udp4", p: pkt{udp: true, n: 1001}, typ: TypeNone},
		{name: "none udp6 vlan", p: pkt{v6: true, udp: true, n: 500, tpids: []uint16{etherTypeVLAN}}, typ: TypeNone},
		{name: "none plain", p: pkt{n: 100}, typ: TypeNone, flags: FlagDataValid},
		{name: "tcp4 fits options 1436", p: pkt{n: 1436, tcpOpts: ts}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 fits options 1448", p: pkt{n: 1448, tcpOpts: ts}, typ: TypeTCPv4, mss: 1448},
		{name: "tcp4 no csum 1448", p: pkt{n: 1448}, typ: TypeTCPv4, mss: 1448, flags: FlagDataValid},
		{name: "tcp4 no csum 1434", p: pkt{n: 1434}, typ: TypeTCPv4, mss: 1448, flags: FlagDataValid},
		{name: "tcp4 no csum 1449", p: pkt{n: 1449}, typ: TypeTCPv4, mss: 1448, flags: FlagDataValid},
		{name: "tcp6 no csum 1448", p: pkt{v6: true, n: 1448}, typ: TypeTCPv6, mss: 1448, flags: FlagDataValid},
		{name: "ufo4 fits", p: pkt{udp: true, n: 1472}, typ: TypeUDP, mss: 1480},
		{name: "ufo4 no csum 1472", p: pkt{udp: true, n: 1472}, typ: TypeUDP, mss: 1480, flags: FlagDataValid},
		{name: "ufo4 no csum 1460", p: pkt{udp: true, n: 1460}, typ: TypeUDP, mss: 1480, flags: FlagDataValid},
		{name: "ufo4 odd mss", p: pkt{udp: true, n: 3000}, typ: TypeUDP, mss: 1001,
			differs: "the kernel sends fragments with offsets rounded down, so they overlap"},
		{name: "ufo6 hbh", p: pkt{v6: true, hbh: true, udp: true, n: 3000}, typ: TypeUDP, mss: 1448,
			differs: "the kernel's fragment offsets count the hop-by-hop header, so they are wrong"},
		{name: "ufo6 no csum", p: pkt{v6: true, udp: true, n: 3000}, typ: TypeUDP, mss: 1448, flags: FlagDataValid},
		{name: "uso4 fits", p: pkt{udp: true, n: 1472}, typ: TypeUDPL4, mss: 1472},
		{name: "uso4 128", p: pkt{udp: true, n: 12800}, typ: TypeUDPL4, mss: 100},
		{name: "uso4 129", p: pkt{udp: true, n: 12801}, typ: TypeUDPL4, mss: 100},
		{name: "uso4 64+1", p: pkt{udp: true, n: 6401}, typ: TypeUDPL4, mss: 100},
		{name: "uso4 no csum", p: pkt{udp: true, n: 3000}, typ: TypeUDPL4, mss: 1472, flags: FlagDataValid},
		{name: "uso4 ecn", p: pkt{udp: true, n: 3000}, typ: TypeUDPL4 | TypeECN, mss: 1472},
		{name: "ufo4 ecn", p: pkt{udp: true, n: 3000}, typ: TypeUDP | TypeECN, mss: 1480},
		{name: "tcp4 tiny mss", p: pkt{n: 40000}, typ: TypeTCPv4, mss: 16,
			differs: "2500 segments: more than MaxSegments"},
		{name: "tcp4 zero csum", p: pkt{n: 4000}, typ: TypeTCPv4, mss: 1000, edit: zeroCsum},
		{name: "uso4 zero csum", p: pkt{udp: true, n: 4000}, typ: TypeUDPL4, mss: 1000, edit: zeroCsum},
		{name: "ufo4 zero csum", p: pkt{udp: true, n: 4000}, typ: TypeUDP, mss: 1000, edit: zeroCsum},
		{name: "none tcp zero csum", p: pkt{n: 1000}, typ: TypeNone, edit: zeroCsum},
		{name: "none udp zero csum", p: pkt{udp: true, n: 1000}, typ: TypeNone, edit: zeroCsum},
		{name: "none odd offsets", p: pkt{n: 1000}, typ: TypeNone, edit: func(h *Hdr, _ []byte) { h.CsumStart = 41; h.CsumOffset = 21 }},
		{name: "none csum_start 19", p: pkt{n: 1000}, typ: TypeNone, edit: func(h *Hdr, _ []byte) { h.CsumStart = 19; h.CsumOffset = 21 }},
		{name: "none ecn", p: pkt{n: 1000}, typ: TypeNone | TypeECN},
		{name: "tcp4 as tcp6", p: pkt{n: 5000}, typ: TypeTCPv6, mss: 1448},
		{name: "tcp4 ufo", p: pkt{n: 5000}, typ: TypeUDP, mss: 1448},
		{name: "tcp4 csum_start off", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, _ []byte) { h.CsumStart += 4 }},
		{name: "tcp4 hdr_len 0", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, _ []byte) { h.HdrLen = 0 }},
		{name: "tcp4 hdr_len 10", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, _ []byte) { h.HdrLen = 10 }},
		{name: "tcp4 hdr_len big", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, _ []byte) { h.HdrLen = 3000 }},
		{name: "tcp4 hdr_len beyond", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { h.HdrLen = uint16(len(f) + 1) }},
		{name: "tcp4 csum beyond", p: pkt{n: 100}, typ: TypeNone, edit: func(h *Hdr, f []byte) { h.CsumOffset = uint16(len(f)) - h.CsumStart - 1 }},
		{name: "tcp4 fragment", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[20] |= 0x20 }},
		{name: "tcp4 no tcp header", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[46] = 0x40 }},
		{name: "tcp4 not ip", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[12] = 0x88 }},
		{name: "tcp4 udp proto", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[23] = protoUDP }},
		{name: "tcp4 gso_size 0", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { h.GSOSize = 0 }},
		{name: "tcp4 type 2", p: pkt{n: 5000}, typ: 2, mss: 1448},
		{name: "tcp4 csum_offset 6", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { h.CsumOffset = 6 }},
		{name: "tcp4 ip version 6", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[14] = 0x65 }},
		{name: "tcp4 ip len long", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[17] += 4 }},
		{name: "tcp4 ihl 4", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[14] = 0x44 }},
		{name: "tcp6 payload len", p: pkt{v6: true, n: 5000}, typ: TypeTCPv6, mss: 1000, edit: func(h *Hdr, f []byte) { f[19]-- },
			differs: "the kernel rewrites a wrong IPv6 payload length"},
		{name: "tcp6 frag header", p: pkt{v6: true, n: 5000}, typ: TypeTCPv6, mss: 1000, edit: func(h *Hdr, f []byte) { f[20] = protoFragment }},
		{name: "tcp6 no next header", p: pkt{v6: true, n: 5000}, typ: TypeTCPv6, mss: 1000, edit: func(h *Hdr, f []byte) { f[20] = 59 }},
		{name: "uso4 udp len", p: pkt{udp: true, n: 3000}, typ: TypeUDPL4, mss: 1000, edit: func(h *Hdr, f []byte) { f[39]-- },
			differs: "the kernel rewrites a wrong UDP length (and adjusts the checksum from it)"},
		{name: "ufo4 udp len", p: pkt{udp: true, n: 3000}, typ: TypeUDP, mss: 1000, edit: func(h *Hdr, f []byte) { f[39]-- },
			differs: "the kernel fragments a datagram whose UDP length is wrong"},
		{name: "uso4 hdr_len", p: pkt{udp: true, n: 3000}, typ: TypeUDPL4, mss: 1000, edit: func(h *Hdr, f []byte) { h.HdrLen = 100 }},
		{name: "uso6 hbh", p: pkt{v6: true, hbh: true, udp: true, n: 5000}, typ: TypeUDPL4, mss: 1000},
		{name: "uso6 zero csum", p: pkt{v6: true, udp: true, n: 5000}, typ: TypeUDPL4, mss: 1000, edit: zeroCsum},
		{name: "tcp6 zero csum", p: pkt{v6: true, n: 5000}, typ: TypeTCPv6, mss: 1000, edit: zeroCsum},
		{name: "tcp4 bad seed", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[h.CsumStart+16]++ }},
		{name: "tcp4 trailing", p: pkt{n: 5000}, typ: TypeTCPv4, mss: 1448, edit: func(h *Hdr, f []byte) { f[17] -= 4 }},
	}
}

// TestIntegrationMatchesKernel compares Segment with the kernel's software
// GSO byte for byte (go test -run MatchesKernel; needs root and /dev/net/tun).
func TestIntegrationMatchesKernel(t *testing.T) {
	kp := newKernelPair(t)
	// The bridge may take a moment to forward: retry a first frame.
	warm, _ := pkt{n: 10}.frame()
	if err := testutil.WaitFor(5*time.Second, func() bool {
		return len(kp.send(t, Hdr{}, warm, 100*time.Millisecond)) > 0
	}); err != nil {
		t.Fatalf("the bridge does not forward: %v", err)
	}
	var s Segmenter
	for _, c := range kernelCases() {
		t.Run(c.name, func(t *testing.T) {
			frame, _ := c.p.frame()
			h := c.p.hdr(c.typ, c.mss)
			if c.flags != 0 {
				h.Flags = c.flags
			}
			if c.edit != nil {
				c.edit(&h, frame)
			}
			kern := kp.send(t, h, frame, 100*time.Millisecond)
			ours, err := s.Segment(h, frame)
			if c.differs != "" {
				if err == nil {
					t.Errorf("Segment made %d frames; want an error (%s)", len(ours), c.differs)
				}
				t.Logf("known difference: Segment: %v; the kernel sent %d frames: %s", err, len(kern), c.differs)
				return
			}
			if err != nil {
				if len(kern) != 0 {
					t.Errorf("Segment: %v; the kernel sent %d frames", err, len(kern))
				}
				return
			}
			compareFrames(t, ours, kern)
		})
	}
}

// compareFrames compares Segment's frames with the kernel's, copying the
// kernel's IPv6 fragment identification (random) into ours first.
func compareFrames(t *testing.T, ours, kern [][]byte) {
	t.Helper()
	if len(ours) != len(kern) {
		t.Errorf("Segment made %d frames, the kernel %d", len(ours), len(kern))
	}
	for i := range min(len(ours), len(kern)) {
		o := bytes.Clone(ours[i])
		maskFragID(o, kern[i])
		if !bytes.Equal(o, kern[i]) {
			t.Errorf("frame %d (len %d, kernel %d): %s", i, len(o), len(kern[i]), firstDiff(o, kern[i]))
		}
	}
}

func maskFragID(ours, kern []byte) {
	l3 := ethHdrLen
	for l3+2 <= len(ours) && l3+2 <= len(kern) {
		et := binary.BigEndian.Uint16(ours[l3-2:])
		if et != etherTypeVLAN && et != etherTypeQinQ {
			break
		}
		l3 += vlanLen
	}
	if len(ours) < l3+ipv6Len+ipv6FragLen || len(kern) < l3+ipv6Len+ipv6FragLen {
		return
	}
	if ours[l3]>>4 == 6 && ours[l3+ipv6OffNext] == protoFragment && kern[l3+ipv6OffNext] == protoFragment {
		copy(ours[l3+ipv6Len+4:l3+ipv6Len+8], kern[l3+ipv6Len+4:])
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			lo := max(0, i-8)
			return fmt.Sprintf("first difference at %d:\n ours   % x\n kernel % x", i, a[lo:min(len(a), i+16)], b[lo:min(len(b), i+16)])
		}
	}
	return "one is a prefix of the other"
}
