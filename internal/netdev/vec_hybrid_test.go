//go:build linux

package netdev

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

// TestIntegrationVecHybrid opens vec0:transport=hybrid on a new tap in a
// fresh network namespace, wraps K's half over copies of the two
// descriptors, and checks: a frame the guest sends reaches the host's
// stack through the tap and does not come back; a datagram the host sends
// out of the tap is read from the packet socket (vnet header first); the
// tap's own queue of those frames is drained (no drops on the tap after
// more frames than it holds).
func TestIntegrationVecHybrid(t *testing.T) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	testutil.LeakCheck(t)
	guestMAC := net.HardwareAddr{0x02, 0, 0x0a, 0x4d, 0x0a, 0x02}
	type res struct {
		o      *Opened
		tapMAC net.HardwareAddr
		lis    net.PacketConn // the host's UDP socket, 10.77.10.1:5000
		err    error
	}
	ch := make(chan res, 1)
	go func() { // the host's side, opened inside ns as P opens it in the host's
		lockInNetNS(t, ns)
		h, _ := testHost()
		o, err := OpenVector(h, 0, "transport=hybrid,ifname=hy0,mac="+guestMAC.String())
		if err != nil {
			ch <- res{err: err}
			return
		}
		for _, argv := range [][]string{
			{"ip", "addr", "add", "10.77.10.1/24", "dev", "hy0"},
			{"ip", "link", "set", "hy0", "up"},
			{"ip", "neigh", "add", "10.77.10.2", "lladdr", guestMAC.String(), "dev", "hy0"},
		} {
			if out, err := testutil.InNetNS(ns, argv...).CombinedOutput(); err != nil {
				t.Errorf("%v: %v: %s", argv, err, out)
			}
		}
		ifc, err := net.InterfaceByName("hy0")
		if err != nil {
			ch <- res{o: o, err: err}
			return
		}
		lis, err := net.ListenPacket("udp4", "10.77.10.1:5000")
		ch <- res{o, ifc.HardwareAddr, lis, err}
	}()
	r := <-ch
	if r.o != nil {
		defer r.o.Close()
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.lis.Close()
	o := r.o
	if !o.Eth.Vnet || o.Eth.Offload || o.Rx == nil || len(o.Files()) != 2 || o.Eth.RxName() != "vec0-rx" {
		t.Fatalf("Opened = %+v; want vnet headers, no offload, a receive descriptor", o)
	}
	tr, err := DriverOf(o.Eth).WrapHost(o.Eth, dupFile(t, o.File), dupFile(t, o.Rx))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	hy := tr.(*hybridTransport)

	// The guest sends a UDP datagram to the host (vnet header: nothing to do).
	out := make([]byte, vnetHdrLen, 128)
	out = append(out, r.tapMAC...)
	out = append(out, guestMAC...)
	out = append(out, 0x08, 0x00)
	out = append(out, udp4([4]byte{10, 77, 10, 2}, [4]byte{10, 77, 10, 1}, 4000, 5000, []byte("to-host"))...)
	if err := tr.WriteFrame(out); err != nil {
		t.Fatal(err)
	}
	r.lis.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	if n, _, err := r.lis.ReadFrom(buf); err != nil || string(buf[:n]) != "to-host" {
		t.Fatalf("the host received %q, %v; want \"to-host\"", buf[:n], err)
	}

	// The host sends one to the guest: it comes from the packet socket,
	// and the guest's own frame does not.
	if _, err := r.lis.WriteTo([]byte("to-guest"), &net.UDPAddr{IP: net.IPv4(10, 77, 10, 2), Port: 6000}); err != nil {
		t.Fatal(err)
	}
	hy.sock.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := tr.ReadFrame(buf)
		if err != nil {
			t.Fatalf("no frame with the host's datagram: %v", err)
		}
		f := buf[:n]
		if bytes.Contains(f, []byte("to-host")) {
			t.Fatalf("the guest's own frame came back: % x", f)
		}
		if bytes.Contains(f, []byte("to-guest")) {
			if n < vnetHdrLen+14 || !bytes.Equal(f[vnetHdrLen:vnetHdrLen+6], guestMAC) {
				t.Fatalf("host's frame % x: want a vnet header, then the guest's MAC", f)
			}
			break
		}
	}

	// More frames than a new tap's queue holds (1000), in bursts: none is
	// dropped at the tap, which K drains.
	for burst := 0; burst < 8; burst++ {
		for i := 0; i < 200; i++ {
			r.lis.WriteTo([]byte("burst"), &net.UDPAddr{IP: net.IPv4(10, 77, 10, 2), Port: 6000})
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, err := testutil.InNetNS(ns, "cat", "/sys/class/net/hy0/statistics/tx_dropped").CombinedOutput()
	if err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Errorf("hy0 tx_dropped = %q, %v; want 0 (the tap's queue drained)", b, err)
	}
}

// dupFile is a copy of f's descriptor, as K gets it.
func dupFile(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), f.Name())
}

// udp4 is an IPv4 packet holding a UDP datagram (no UDP checksum).
func udp4(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(p[2:], uint16(28+len(payload)))
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	return append(p, payload...)
}
