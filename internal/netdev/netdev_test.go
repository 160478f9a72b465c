//go:build linux

package netdev

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/testutil"
)

// fakeSwitch accepts one port the way uml_switch does: reads the v3
// request, answers with its own abstract data address, and returns the
// client's address and the switch's data socket.
type fakeSwitch struct {
	ctl  string
	data int
	req  chan switchproto.Request
	conn chan net.Conn
}

func startFakeSwitch(t *testing.T) *fakeSwitch {
	t.Helper()
	s := &fakeSwitch{ctl: filepath.Join(t.TempDir(), "ctl"), req: make(chan switchproto.Request, 1), conn: make(chan net.Conn, 1)}
	l, err := net.Listen("unix", s.ctl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	self := switchproto.SwitchSockaddr(int32(os.Getpid()), 424242)
	if err := sys.BindRaw(fd, self[:addrLen(&self)]); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	s.data = fd
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 200)
		n, _ := c.Read(buf)
		var r switchproto.Request
		if r.UnmarshalBinary(buf[:n]) == nil && n == switchproto.RequestV3Size {
			s.req <- r
		}
		c.Write(self[:])
		s.conn <- c
	}()
	return s
}

func TestDaemonTransportAndRelay(t *testing.T) {
	testutil.LeakCheck(t)
	sw := startFakeSwitch(t)
	dc, err := DialDaemon(sw.ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Ctl.Close()
	var req switchproto.Request
	select {
	case req = <-sw.req:
	case <-time.After(5 * time.Second):
		t.Fatal("the switch got no 124-byte v3 request")
	}
	if req.Version != 3 || req.Addr != dc.Addr || !dc.Addr.IsAbstract() {
		t.Fatalf("request %+v, want v3 with our abstract address", req)
	}
	if dc.Switch != switchproto.SwitchSockaddr(int32(os.Getpid()), 424242) {
		t.Fatalf("switch address %x", dc.Switch[:16])
	}
	swConn := <-sw.conn
	defer swConn.Close()

	tr, err := NewDaemon(dc.Data, dc.Switch)
	if err != nil {
		t.Fatal(err)
	}
	// The "guest" side: one end of a datagram socketpair as a File transport.
	guestEnd, peer, err := sys.FilePair(unix.SOCK_DGRAM, "guest", "peer")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	guest, err := NewFile(guestEnd)
	if err != nil {
		t.Fatal(err)
	}
	r := StartRelay(guest, tr)
	t.Cleanup(func() { r.Stop() })

	out := append(bytes.Repeat([]byte{0xff}, 6), []byte("\x02\x00\x00\x00\x00\x01\x88\xb5guest->switch")...)
	if _, err := peer.Write(out); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	n, from, err := unix.Recvfrom(sw.data, buf, 0)
	if err != nil {
		t.Fatalf("switch received nothing: %v", err)
	}
	if !bytes.Equal(buf[:n], out) {
		t.Fatalf("switch got %q, want %q", buf[:n], out)
	}
	if _, ok := from.(*unix.SockaddrUnix); !ok {
		t.Fatalf("frame came from %#v, want a unix address", from)
	}
	in := append(bytes.Repeat([]byte{0xff}, 6), []byte("\x02\x00\x00\x00\x00\x02\x88\xb5switch->guest")...)
	if err := sys.SendtoRaw(sw.data, in, unix.MSG_DONTWAIT, dc.Addr[:addrLen(&dc.Addr)]); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = peer.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], in) {
		t.Fatalf("guest got %q, %v; want %q", buf[:n], err, in)
	}
	done := make(chan error, 1)
	go func() { done <- r.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not unblock the relay goroutines")
	}
	if err := r.Err(); err != nil {
		t.Errorf("relay error: %v", err)
	}
}

func TestDialDaemonErrors(t *testing.T) {
	_, err := DialDaemon(filepath.Join(t.TempDir(), "missing.ctl"))
	if err == nil || err.Error() != "daemon_open : control connect failed, errno = 2" {
		t.Fatalf("err = %v", err)
	}
	// A switch that closes without a reply.
	ctl := filepath.Join(t.TempDir(), "ctl")
	l, err := net.Listen("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Read(make([]byte, 200))
			c.Close()
		}
	}()
	if _, err := DialDaemon(ctl); err == nil || err.Error() != "daemon_open : read of data socket failed, err = 0" {
		t.Fatalf("err = %v", err)
	}
}

// TestCreateTap creates ethN with a MAC inside a fresh network namespace
// and relays frames between it and a socketpair.
func TestCreateTap(t *testing.T) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	// Run the creation on a thread that lives in the test's namespace.
	type res struct {
		f   *File
		err error
	}
	ch := make(chan res, 1)
	go func() {
		lockInNetNS(t, ns)
		f, err := CreateTap("eth3", [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55})
		ch <- res{f, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.f.Close()
	out, err := testutil.InNetNS(ns, "ip", "-o", "link", "show", "eth3").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"link/ether 02:11:22:33:44:55", "mtu 1500", "state DOWN"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("eth3: %s lacks %q", out, want)
		}
	}
}

// TestMcast opens two mcast transports on one group inside a fresh
// network namespace (lo multicast, 224.0.0.0/4 via lo) and checks a frame
// sent by one reaches the other.
func TestMcast(t *testing.T) {
	ns := testutil.NetNS(t)
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", "lo", "multicast", "on"},
		{"ip", "route", "add", "224.0.0.0/4", "dev", "lo"},
	} {
		if out, err := testutil.InNetNS(ns, argv...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	group := netip.MustParseAddr("239.192.168.9")
	type res struct {
		a, b *os.File
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		lockInNetNS(t, ns)
		a, err := OpenMcast(group, 1102, 1)
		if err != nil {
			ch <- res{err: err}
			return
		}
		b, err := OpenMcast(group, 1102, 1)
		ch <- res{a, b, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	a, err := NewMcast(r.a, group, 1102)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewMcast(r.b, group, 1102)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	frame := append(bytes.Repeat([]byte{0xff}, 6), []byte("\x02\x00\x00\x00\x00\x09\x88\xb5mcast")...)
	if err := a.WriteFrame(frame); err != nil {
		t.Fatal(err)
	}
	b.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2000)
	n, err := b.ReadFrame(buf)
	if err != nil || !bytes.Equal(buf[:n], frame) {
		t.Fatalf("b got %q, %v; want %q", buf[:n], err, frame)
	}
}

func TestOpenMcastNoRoute(t *testing.T) {
	ns := testutil.NetNS(t) // no multicast route: membership fails
	ch := make(chan error, 1)
	go func() {
		lockInNetNS(t, ns)
		f, err := OpenMcast(netip.MustParseAddr("239.192.168.9"), 1102, 1)
		if f != nil {
			f.Close()
		}
		ch <- err
	}()
	if err := <-ch; err == nil || !strings.HasPrefix(err.Error(), "umcast_open: IP_ADD_MEMBERSHIP failed, error = 19") {
		t.Fatalf("err = %v", err)
	}
}
