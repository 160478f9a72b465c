//go:build linux

package uswitch

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/gso"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/vxlan"
)

// vtep is a remote VXLAN endpoint played by the test: a UDP socket on
// loopback.
type vtep struct {
	t    *testing.T
	conn *net.UDPConn
	addr netip.AddrPort
}

func newVTEP(t *testing.T, addr string) *vtep {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no UDP socket at %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &vtep{t: t, conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// freeUDPPort returns a UDP port free on addr just now.
func freeUDPPort(t *testing.T, addr string) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Skipf("no UDP socket on %s: %v", addr, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

func (v *vtep) send(to netip.AddrPort, vni uint32, frame []byte) {
	v.t.Helper()
	h, _ := vxlan.Header{VNI: vni}.AppendBinary(nil)
	v.sendRaw(to, append(h, frame...))
}

func (v *vtep) sendRaw(to netip.AddrPort, p []byte) {
	v.t.Helper()
	if _, err := v.conn.WriteToUDPAddrPort(p, to); err != nil {
		v.t.Fatal(err)
	}
}

// expect reads one datagram: the header must be ours (I flag alone, VNI
// vni, reserved zero) and the frame want.
func (v *vtep) expect(vni uint32, want []byte) netip.AddrPort {
	v.t.Helper()
	buf := make([]byte, 70000)
	v.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := v.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		v.t.Fatalf("vtep %s: %v", v.addr, err)
	}
	wantHdr, _ := vxlan.Header{VNI: vni}.AppendBinary(nil)
	if n < vxlan.HeaderLen || !bytes.Equal(buf[:vxlan.HeaderLen], wantHdr) {
		v.t.Fatalf("vtep %s got header % x; want % x", v.addr, buf[:min(n, 8)], wantHdr)
	}
	if got := buf[vxlan.HeaderLen:n]; !bytes.Equal(got, want) {
		v.t.Fatalf("vtep %s got %d-byte frame %x...; want %d bytes %x...", v.addr, len(got), got[:min(len(got), 20)], len(want), want[:min(len(want), 20)])
	}
	return from
}

func (v *vtep) expectNothing() {
	v.t.Helper()
	buf := make([]byte, 70000)
	v.conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if n, _, err := v.conn.ReadFromUDPAddrPort(buf); err == nil {
		v.t.Fatalf("vtep %s got an unexpected %d-byte datagram % x", v.addr, n, buf[:min(n, 30)])
	}
}

var (
	macR1 = [6]byte{2, 0, 0, 0, 1, 1}
	macR2 = [6]byte{2, 0, 0, 0, 2, 2}
	macR3 = [6]byte{2, 0, 0, 0, 3, 3}
)

// vxRig is a switch with a VXLAN uplink on 127.0.0.1 with peers r1 and r2.
func vxRig(t *testing.T, cfg Config, learnPort bool) (*rig, netip.AddrPort, *vtep, *vtep) {
	t.Helper()
	r1, r2 := newVTEP(t, "127.0.0.1:0"), newVTEP(t, "127.0.0.1:0")
	port := freeUDPPort(t, "127.0.0.1")
	cfg.Vxlan = &VxlanConfig{VNI: 42, Local: netip.MustParseAddr("127.0.0.1"), Port: port,
		Peers: []netip.AddrPort{r1.addr, r2.addr}, LearnPort: learnPort}
	r := startSwitch(t, cfg)
	r.waitOut(t, "VXLAN uplink: vni 42, udp 127.0.0.1:")
	return r, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), r1, r2
}

// TestVxlanFloodLearnForward: broadcast and unknown unicast go to every
// peer (head-end replication), from the switch's port; a MAC seen behind
// a peer is then sent to that peer alone; frames from a peer reach the
// local ports, learned ones only their port.
func TestVxlanFloodLearnForward(t *testing.T) {
	r, sw, r1, r2 := vxRig(t, Config{}, false)
	a, b := dial(t, r), dial(t, r)

	bcast := plainFrame(macA, bc, 60)
	if err := a.Send(bcast); err != nil {
		t.Fatal(err)
	}
	if from := r1.expect(42, bcast); from != sw {
		t.Errorf("datagram came from %s; want the uplink's %s", from, sw)
	}
	r2.expect(42, bcast)
	expectFrame(t, b, bcast)

	// r1 answers A: A alone gets it; the MAC is learned behind r1.
	reply := plainFrame(macR1, macA, 98)
	r1.send(sw, 42, reply)
	expectFrame(t, a, reply)
	expectNothing(t, b)
	r.waitOut(t, " Addr: 02:00:00:00:01:01 New port ")

	toR1 := plainFrame(macA, macR1, 1514)
	a.Send(toR1)
	r1.expect(42, toR1)
	r2.expectNothing()
	expectNothing(t, b)

	// Unknown unicast: every peer, and the other local port.
	toR3 := plainFrame(macA, macR3, 70)
	a.Send(toR3)
	r1.expect(42, toR3)
	r2.expect(42, toR3)
	expectFrame(t, b, toR3)

	// A 14-byte frame is forwarded too; a jumbo one unchanged.
	for _, n := range []int{14, 9000} {
		f := plainFrame(macR2, macB, n)
		r2.send(sw, 42, f)
		expectFrame(t, b, f)
	}
}

// TestVxlanSplitHorizon: nothing received over VXLAN goes out over VXLAN
// again: a broadcast from one peer is not replicated to the other, and a
// frame from one peer for a MAC behind another is dropped.
func TestVxlanSplitHorizon(t *testing.T) {
	r, sw, r1, r2 := vxRig(t, Config{}, false)
	a := dial(t, r)
	r2.send(sw, 42, plainFrame(macR2, bc, 60))
	expectFrame(t, a, plainFrame(macR2, bc, 60))
	r1.expectNothing()

	r1.send(sw, 42, plainFrame(macR1, macR2, 60))
	r2.expectNothing()
	r1.expectNothing()
	expectNothing(t, a)

	// Unknown unicast from a peer: local ports only.
	r1.send(sw, 42, plainFrame(macR1, macR3, 60))
	expectFrame(t, a, plainFrame(macR1, macR3, 60))
	r2.expectNothing()
}

// TestVxlanDrops: another VNI, a header without the I flag, a short frame
// and an oversized-for-nothing header-only datagram (VDE's vxvde sends
// those) are not forwarded; the first three are counted. Reserved bits are
// ignored (RFC 7348).
func TestVxlanDrops(t *testing.T) {
	r, sw, r1, _ := vxRig(t, Config{}, false)
	a := dial(t, r)
	f := plainFrame(macR1, bc, 60)
	r1.send(sw, 43, f)
	r1.sendRaw(sw, append([]byte{0x00, 0, 0, 0, 0, 0, 42, 0}, f...))
	r1.sendRaw(sw, append([]byte{0x08, 0, 0, 0, 0, 0, 42, 0}, f[:10]...))
	r1.sendRaw(sw, []byte{0x08, 0, 0, 0, 0, 0, 42, 0})
	expectNothing(t, a)
	r.waitErr(t, "VXLAN frame for VNI 43 from 127.0.0.1:")
	r.waitErr(t, "VXLAN datagram from 127.0.0.1:")
	r.waitErr(t, "Short VXLAN frame of 10 bytes from 127.0.0.1:")

	r1.sendRaw(sw, append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 42, 0xff}, f...))
	expectFrame(t, a, f)

	r.sigs <- syscall.SIGUSR1
	r.waitOut(t, "VXLAN vni 42: 2 remotes, 1 MACs learned, 1 frames of other VNIs, 2 bad datagrams, offloads finished: 0 checksums, 0 TSO frames\n")
	r.waitOut(t, "(vxlan vni 42 udp 127.0.0.1:")
	r.waitOut(t, ": rx 1 frames 60 bytes, tx 0 frames 0 bytes, 3 dropped\n")
}

// TestVxlanAging: a remote MAC ages like the switch's table: after the
// aging time, frames for it are flooded to every peer again, and the
// status no longer lists it.
func TestVxlanAging(t *testing.T) {
	r, sw, r1, r2 := vxRig(t, Config{AgeLimit: 300 * time.Millisecond}, false)
	a := dial(t, r)
	r1.send(sw, 42, plainFrame(macR1, macA, 60))
	r.waitOut(t, " Addr: 02:00:00:00:01:01 New port ")
	time.Sleep(800 * time.Millisecond)
	f := plainFrame(macA, macR1, 60)
	a.Send(f)
	r1.expect(42, f)
	r2.expect(42, f)
	r.sigs <- syscall.SIGUSR1
	r.waitOut(t, "VXLAN vni 42: 2 remotes, 0 MACs learned")
}

// TestVxlanLearnedRemote: a VTEP that is not a configured peer and sends
// from a port of its own per flow (as Linux's vxlan does) is learned at
// its address and the uplink's port, where its replies are sent; with
// LearnPort (VDE's vxvde) at its exact source.
func TestVxlanLearnedRemote(t *testing.T) {
	t.Run("address", func(t *testing.T) {
		r, sw, r1, r2 := vxRig(t, Config{}, false)
		a := dial(t, r)
		// 127.0.0.3 listens on the uplink's port and sends from another.
		listen := newVTEP(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), sw.Port()).String())
		send := newVTEP(t, "127.0.0.3:0")
		send.send(sw, 42, plainFrame(macR3, macA, 60))
		expectFrame(t, a, plainFrame(macR3, macA, 60))
		f := plainFrame(macA, macR3, 60)
		a.Send(f)
		listen.expect(42, f)
		send.expectNothing()
		r1.expectNothing()
		r2.expectNothing()
		r.sigs <- syscall.SIGUSR1
		r.waitOut(t, "Remote 127.0.0.3:"+itoa(int(sw.Port()))+" (learned): rx 1 frames 60 bytes, tx 1 frames 60 bytes, 1 MACs 02:00:00:00:03:03\n")
	})
	t.Run("port", func(t *testing.T) {
		r, sw, _, _ := vxRig(t, Config{}, true)
		a := dial(t, r)
		v := newVTEP(t, "127.0.0.4:0")
		v.send(sw, 42, plainFrame(macR3, macA, 60))
		expectFrame(t, a, plainFrame(macR3, macA, 60))
		f := plainFrame(macA, macR3, 60)
		a.Send(f)
		v.expect(42, f)
	})
}

// TestVxlanSegments: a vnet client's 64 KiB TCP segment reaches the
// uplink as the standard frames software GSO makes, each encapsulated
// (sent in runs with UDP_SEGMENT; on a 1500-byte underlay, where they are
// fragmented, one by one: TestIntegrationSwitchVxlanOurs).
func TestVxlanSegments(t *testing.T) {
	r, sw, r1, r2 := vxRig(t, Config{}, false)
	a := dialVnet(t, r)
	r1.send(sw, 42, plainFrame(macR1, macA, 60))
	zero := make([]byte, gso.HdrLen)
	expectFrame(t, a, append(zero, plainFrame(macR1, macA, 60)...))
	seg := tcpSegment(macA, macR1, 20000, 1448)
	if err := a.Send(seg); err != nil {
		t.Fatal(err)
	}
	h, _ := gso.ParseHdr(seg)
	want, err := (&gso.Segmenter{}).Segment(h, seg[gso.HdrLen:])
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if len(w) > ether.MaxFrame {
			t.Fatalf("segment of %d bytes", len(w))
		}
		r1.expect(42, w)
	}
	r2.expectNothing()
	// Loopback's MTU takes them all in UDP GSO sends.
	if u := r.s.vx; u.noGSO.Load() || u.gsoMaxSeg.Load() != udpMaxPayload {
		t.Errorf("UDP GSO refused (off %v, largest datagram %d)", u.noGSO.Load(), u.gsoMaxSeg.Load())
	}
}

// TestVxlanIPv6: the uplink on ::1 floods to an IPv6 peer and learns it.
func TestVxlanIPv6(t *testing.T) {
	p := newVTEP(t, "[::1]:0")
	port := freeUDPPort(t, "::1")
	r := startSwitch(t, Config{Vxlan: &VxlanConfig{VNI: 7, Local: netip.MustParseAddr("::1"), Port: port, Peers: []netip.AddrPort{p.addr}}})
	sw := netip.AddrPortFrom(netip.MustParseAddr("::1"), port)
	a := dial(t, r)
	f := plainFrame(macA, bc, 60)
	a.Send(f)
	if from := p.expect(7, f); from != sw {
		t.Errorf("from %s; want %s", from, sw)
	}
	p.send(sw, 7, plainFrame(macR1, macA, 60))
	expectFrame(t, a, plainFrame(macR1, macA, 60))
	a.Send(plainFrame(macA, macR1, 60))
	p.expect(7, plainFrame(macA, macR1, 60))
}

// TestVxlanOwnPeer: a peer that is the switch's own address and port is
// left out (one peer list can serve every host).
func TestVxlanOwnPeer(t *testing.T) {
	p := newVTEP(t, "127.0.0.1:0")
	port := freeUDPPort(t, "127.0.0.1")
	own := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	r := startSwitch(t, Config{Vxlan: &VxlanConfig{VNI: 1, Port: port, Peers: []netip.AddrPort{own, p.addr}}})
	r.waitOut(t, "VXLAN: ignoring peer "+own.String()+": it is this switch's own address\n")
	r.waitOut(t, "VXLAN uplink: vni 1, udp 0.0.0.0:"+itoa(int(port))+", peers "+p.addr.String()+"\n")
}

// TestVxlanListenErrors: a port in use and a missing interface are
// errors of Listen, and leave no socket file behind.
func TestVxlanListenErrors(t *testing.T) {
	busy := newVTEP(t, "127.0.0.1:0")
	for _, tt := range []struct {
		vx   VxlanConfig
		want string
	}{
		{VxlanConfig{VNI: 1, Local: netip.MustParseAddr("127.0.0.1"), Port: busy.addr.Port(), Peers: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:1")}},
			"vxlan: bind 127.0.0.1:" + itoa(int(busy.addr.Port())) + ": address already in use"},
		{VxlanConfig{VNI: 1, Group: netip.MustParseAddr("239.1.1.1"), Dev: "nosuchdev0"}, "vxlan: -vxlan-dev nosuchdev0: no such network interface"},
	} {
		ctl := t.TempDir() + "/sw.ctl"
		vx := tt.vx
		_, err := Listen(Config{CtlPath: ctl, Vxlan: &vx, Stdout: io.Discard, Stderr: io.Discard})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Listen(%+v) = %v; want %q", tt.vx, err, tt.want)
		}
		if _, err := net.Dial("unix", ctl); err == nil {
			t.Errorf("control socket %s left listening", ctl)
		}
	}
}

// TestVxlanFDB: the forwarding database with an explicit clock.
func TestVxlanFDB(t *testing.T) {
	var f vxFDB
	ra, rb := &vxRemote{kind: "a"}, &vxRemote{kind: "b"}
	const age = 100 * time.Second
	f.learn(macR1, ra, 0, 2)
	f.learn(macR2, rb, 10*time.Second, 2)
	if !f.learn(macR1, rb, 20*time.Second, 2) {
		t.Fatal("moving a MAC failed")
	}
	if f.learn(macR3, ra, 20*time.Second, 2) {
		t.Error("learned past the limit")
	}
	for _, tt := range []struct {
		mac  [6]byte
		now  time.Duration
		want *vxRemote
	}{
		{macR1, 50 * time.Second, rb},
		{macR1, 120 * time.Second, rb},
		{macR1, 121 * time.Second, nil},
		{macR2, 110 * time.Second, rb},
		{macR2, 111 * time.Second, nil},
		{macR3, 0, nil},
	} {
		if got := f.lookup(tt.mac, tt.now, age); got != tt.want {
			t.Errorf("lookup(%v, %v) = %v; want %v", ether.MAC(tt.mac), tt.now, got, tt.want)
		}
	}
	f.sweep(115*time.Second, age)
	if len(f.m) != 1 {
		t.Errorf("after sweep %d entries; want 1", len(f.m))
	}
}

// TestVxlanRemoteFor: which remote a datagram's outer source is learned
// as.
func TestVxlanRemoteFor(t *testing.T) {
	ap := netip.MustParseAddrPort
	mk := func(learnPort bool) *vxUplink {
		u := &vxUplink{cfg: VxlanConfig{Port: 4789, LearnPort: learnPort}, remotes: map[netip.AddrPort]*vxRemote{}}
		for _, p := range []string{"10.0.0.1:4789", "10.0.0.2:5000"} {
			r, _ := u.newRemote(ap(p), "peer")
			u.flood = append(u.flood, r)
		}
		return u
	}
	for _, tt := range []struct {
		learnPort bool
		src, want string
	}{
		{false, "10.0.0.1:4789", "10.0.0.1:4789"},
		{false, "10.0.0.1:40000", "10.0.0.1:4789"}, // Linux: per-flow source ports
		{false, "10.0.0.2:40000", "10.0.0.2:5000"}, // the configured peer's port
		{false, "10.0.0.9:40000", "10.0.0.9:4789"},
		{true, "10.0.0.2:5000", "10.0.0.2:5000"},
		{true, "10.0.0.9:40000", "10.0.0.9:40000"}, // vxvde: its own port
		{true, "[::ffff:10.0.0.9]:40000", "10.0.0.9:40000"},
	} {
		u := mk(tt.learnPort)
		r := u.remoteFor(ap(tt.src), 0)
		if r == nil || r.addr != ap(tt.want) {
			t.Errorf("learnPort %v: remoteFor(%s) = %v; want %s", tt.learnPort, tt.src, r, tt.want)
			continue
		}
		if got, _ := parseSockaddr(r.raw); got != ap(tt.want) {
			t.Errorf("sockaddr of %s decodes to %s", tt.want, got)
		}
	}
}

// TestVxlanArgs: the command line.
func TestVxlanArgs(t *testing.T) {
	ap, a := netip.MustParseAddrPort, netip.MustParseAddr
	for _, tt := range []struct {
		args string
		want *VxlanConfig
		err  string
	}{
		{"-vxlan 42 -vxlan-peer 10.0.0.2 -vxlan-peer 10.0.0.3:5000", &VxlanConfig{VNI: 42, vniSet: true,
			Peers: []netip.AddrPort{ap("10.0.0.2:0"), ap("10.0.0.3:5000")}}, ""},
		{"--vxlan=7 --vxlan-group=239.1.1.1 -vxlan-dev eth0 -vxlan-local 10.0.0.1 -vxlan-port 8472 -vxlan-ttl 4 -vxlan-learn-port",
			&VxlanConfig{VNI: 7, vniSet: true, Group: a("239.1.1.1"), Dev: "eth0", Local: a("10.0.0.1"), Port: 8472, TTL: 4, LearnPort: true}, ""},
		{"-vxlan 1 -vxlan-peer [fd00::2]:4790 -vxlan-group ff05::5", &VxlanConfig{VNI: 1, vniSet: true,
			Peers: []netip.AddrPort{ap("[fd00::2]:4790")}, Group: a("ff05::5")}, ""},
		{"-vxlan 16777216 -vxlan-peer 10.0.0.2", nil, `-vxlan "16777216": not a VNI (0 to 16777215)`},
		{"-vxlan 1", nil, "-vxlan needs a -vxlan-peer or a -vxlan-group to send to"},
		{"-vxlan-peer 10.0.0.2", nil, "the -vxlan-* options need -vxlan VNI"},
		{"-vxlan 1 -vxlan-peer", nil, "-vxlan-peer needs an argument"},
		{"-vxlan 1 -vxlan-peer 10.0.0.2:x", nil, `-vxlan-peer "10.0.0.2:x": not ADDR or ADDR:PORT ([ADDR]:PORT for IPv6)`},
		{"-vxlan 1 -vxlan-peer 224.0.0.1", nil, `-vxlan-peer "224.0.0.1": not a unicast address (a multicast group goes to -vxlan-group)`},
		{"-vxlan 1 -vxlan-group 10.0.0.1", nil, `-vxlan-group "10.0.0.1": not a multicast group address`},
		{"-vxlan 1 -vxlan-peer 10.0.0.2 -vxlan-local ::1", nil, "-vxlan-peer 10.0.0.2 is IPv4 but -vxlan-local ::1 is IPv6: one uplink uses one address family"},
		{"-vxlan 1 -vxlan-peer 10.0.0.2 -vxlan-dev eth0", nil, "-vxlan-dev names the interface of -vxlan-group, which is missing"},
		{"-vxlan 1 -vxlan-peer 10.0.0.2 -vxlan-port 0", nil, `-vxlan-port "0": not a UDP port (1 to 65535)`},
		{"-vxlan 1 -vxlan-peer 10.0.0.2 -vxlan-ttl 256", nil, `-vxlan-ttl "256": not a TTL (1 to 255)`},
		{"-vxlan 1 -vxlan-peer 10.0.0.2 -vxlan-local 0.0.0.0", nil, `-vxlan-local "0.0.0.0": not a unicast address of this host`},
	} {
		o, err := ParseArgs("uml_switch", strings.Fields(tt.args), io.Discard)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseArgs(%s) = %v; want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseArgs(%s) = %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.want, o.Vxlan, cmp.AllowUnexported(VxlanConfig{}), cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
			cmp.Comparer(func(x, y netip.AddrPort) bool { return x == y })); diff != "" {
			t.Errorf("ParseArgs(%s) Vxlan (-want +got):\n%s", tt.args, diff)
		}
	}
}

// TestVxlanCloses: Close without Run releases the uplink's sockets.
func TestVxlanCloses(t *testing.T) {
	testutil.LeakCheck(t)
	port := freeUDPPort(t, "127.0.0.1")
	cfg := Config{CtlPath: t.TempDir() + "/sw.ctl", Vxlan: &VxlanConfig{VNI: 1, Local: netip.MustParseAddr("127.0.0.1"), Port: port,
		Peers: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:1")}}}
	for range 2 {
		s, err := Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

// TestPutCmsgU16: the control message parses back as the kernel reads it.
func TestPutCmsgU16(t *testing.T) {
	b := make([]byte, unix.CmsgSpace(2))
	putCmsgU16(b, unix.SOL_UDP, unix.UDP_SEGMENT, 1522)
	msgs, err := unix.ParseSocketControlMessage(b)
	if err != nil || len(msgs) != 1 || msgs[0].Header.Level != unix.SOL_UDP || msgs[0].Header.Type != unix.UDP_SEGMENT ||
		len(msgs[0].Data) < 2 || binary.NativeEndian.Uint16(msgs[0].Data) != 1522 {
		t.Fatalf("ParseSocketControlMessage = %+v, %v", msgs, err)
	}
}
