//go:build linux

package uswitch

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/uswitch/switchtest"
)

// fakeUIDs makes every control connection's peer uid come from the
// abstract address the client bound its stream socket to ("@uid-N-…");
// an unbound client (switchtest.Dial) is uid def.
func fakeUIDs(def uint32) func(*net.UnixConn) (uint32, error) {
	return func(c *net.UnixConn) (uint32, error) {
		a, _ := c.RemoteAddr().(*net.UnixAddr)
		if a == nil || !strings.HasPrefix(a.Name, "@uid-") {
			return def, nil
		}
		f := strings.SplitN(a.Name, "-", 3)
		n, err := strconv.ParseUint(f[1], 10, 32)
		return uint32(n), err
	}
}

var ctlSeq atomic.Int32

// dialAs opens a control connection that fakeUIDs attributes to uid.
func dialAs(t *testing.T, ctl string, uid uint32) *net.UnixConn {
	t.Helper()
	la := &net.UnixAddr{Name: fmt.Sprintf("@uid-%d-%d-%d", uid, os.Getpid(), ctlSeq.Add(1)), Net: "unix"}
	c, err := net.DialUnix("unix", la, &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		t.Fatalf("dial as uid %d: %v", uid, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the switch closes c within d (EOF on read).
func closedByPeer(c *net.UnixConn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	var b [200]byte
	n, err := c.Read(b[:])
	return n == 0 && err != nil && !os.IsTimeout(err)
}

func (r *rig) connsOf(uid uint32) int {
	r.s.portsMu.Lock()
	defer r.s.portsMu.Unlock()
	return r.s.perUID[uid]
}

// me is the uid the fake gives unbound clients (the data sockets' owner);
// flood is another user's.
var me, flood = uint32(os.Geteuid()), uint32(os.Geteuid()) + 1000

func TestIdleTimeout(t *testing.T) {
	r := startSwitch(t, Config{IdleTimeout: 200 * time.Millisecond, peerUID: fakeUIDs(me)})
	idle := dialAs(t, r.ctl, flood)
	start := time.Now()
	if !closedByPeer(idle, 3*time.Second) {
		t.Fatal("idle control connection was not closed")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("idle connection closed after %v; want the 200ms timeout", d)
	}
	r.waitErr(t, fmt.Sprintf("Closing connection of uid %d: no request within 200ms\n", flood))
	if err := testutil.WaitFor(2*time.Second, func() bool { return r.connsOf(flood) == 0 }); err != nil {
		t.Errorf("the flooding uid still counted with %d connections", r.connsOf(flood))
	}
	// A version the switch does not serve never completes either.
	v7 := dialAs(t, r.ctl, flood)
	raw, _ := (&switchproto.Request{Version: 3, Addr: switchtest.UMLAddr()}).MarshalBinary()
	raw[4] = 7
	v7.Write(raw)
	if !closedByPeer(v7, 3*time.Second) {
		t.Error("connection with a version 7 request was not closed after the timeout")
	}
	// A registered port is not idle: it stays well past the timeout.
	a, b := dial(t, r), dial(t, r)
	time.Sleep(400 * time.Millisecond)
	f := switchtest.Frame(bc, macA, 60)
	a.Send(f)
	expectFrame(t, b, f)
}

func TestPerUIDLimit(t *testing.T) {
	r := startSwitch(t, Config{MaxPortsPerUID: 3, peerUID: fakeUIDs(me)})
	var conns []*net.UnixConn
	for i := 0; i < 3; i++ {
		conns = append(conns, dialAs(t, r.ctl, flood))
	}
	if err := testutil.WaitFor(2*time.Second, func() bool { return r.connsOf(flood) == 3 }); err != nil {
		t.Fatalf("the flooding uid has %d connections; want 3", r.connsOf(flood))
	}
	over := dialAs(t, r.ctl, flood)
	if !closedByPeer(over, 2*time.Second) {
		t.Fatal("fourth connection of the flooding uid was not refused")
	}
	r.waitErr(t, fmt.Sprintf("Too many connections from uid %d (3), refusing a new one\n", flood))
	// Root is not limited per uid, other users have their own count.
	for i := 0; i < 4; i++ {
		dialAs(t, r.ctl, 0)
	}
	a, b := dial(t, r), dial(t, r) // this process's uid
	f := switchtest.Frame(bc, macA, 60)
	a.Send(f)
	expectFrame(t, b, f)
	wantRoot := 4
	if me == 0 {
		wantRoot += 2
	}
	if err := testutil.WaitFor(2*time.Second, func() bool { return r.connsOf(0) == wantRoot }); err != nil {
		t.Errorf("root has %d connections; want %d", r.connsOf(0), wantRoot)
	}
	// A slot freed is a slot usable again.
	conns[0].Close()
	if err := testutil.WaitFor(2*time.Second, func() bool { return r.connsOf(flood) == 2 }); err != nil {
		t.Fatalf("the flooding uid has %d connections after one closed; want 2", r.connsOf(flood))
	}
	again := dialAs(t, r.ctl, flood)
	if closedByPeer(again, 300*time.Millisecond) {
		t.Error("the flooding uid refused below its limit")
	}
}

func TestTotalLimit(t *testing.T) {
	r := startSwitch(t, Config{MaxPorts: 2, peerUID: fakeUIDs(2000)})
	dialAs(t, r.ctl, 1)
	dialAs(t, r.ctl, 2)
	if !closedByPeer(dialAs(t, r.ctl, 3), 2*time.Second) {
		t.Fatal("third connection was not refused")
	}
	r.waitErr(t, "Too many connections (2), refusing a new one\n")
}

// TestOwnerCheck: a client may only register a data socket its own uid
// created; the refused one gets no reply, and nothing is ever sent there.
func TestOwnerCheck(t *testing.T) {
	r := startSwitch(t, Config{peerUID: fakeUIDs(uint32(os.Geteuid()))})
	dir := t.TempDir()
	// The victim: a datagram socket of this process's uid.
	victimPath := filepath.Join(dir, "victim")
	victim, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: victimPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	os.Chmod(victimPath, 0o600)
	other := uint32(os.Geteuid()) + 4242
	for _, tc := range []struct {
		name string
		addr switchproto.Sockaddr
	}{
		{"named", mustNamed(t, victimPath)},
		{"abstract", func() switchproto.Sockaddr { _, a := boundDgram(t); return a }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialAs(t, r.ctl, other)
			raw, _ := (&switchproto.Request{Version: 3, Addr: tc.addr}).MarshalBinary()
			if _, err := c.Write(raw); err != nil {
				t.Fatal(err)
			}
			if !closedByPeer(c, 2*time.Second) {
				t.Fatal("registration of another user's socket was not refused")
			}
			r.waitErr(t, fmt.Sprintf("Refusing port of uid %d: data socket ", other))
			r.waitErr(t, fmt.Sprintf("data socket belongs to another user: owned by uid %d\n", os.Geteuid()))
		})
	}
	// The same socket registered by its owner is accepted.
	own, err := switchtest.Dial(r.ctl, &switchtest.Options{Addr: ptr(mustNamed(t, filepath.Join(dir, "own")))})
	if err != nil {
		t.Fatalf("owner's registration: %v", err)
	}
	defer own.Close()
	a := dial(t, r)
	f := switchtest.Frame(bc, macA, 60)
	a.Send(f)
	expectFrame(t, own, f)
	victim.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [2000]byte
	if n, _, err := victim.ReadFrom(b[:]); err == nil {
		t.Fatalf("victim socket received %d bytes", n)
	}
	if len(r.s.Counters()) != 2 {
		t.Errorf("ports = %+v; want the two accepted clients only", r.s.Counters())
	}
}

// TestOwnerCheckRoot: root's clients may name any socket (running as
// root only: the socket is given to another uid with fchown).
func TestOwnerCheckRootAndForeignOwner(t *testing.T) {
	testutil.RequireRoot(t)
	r := startSwitch(t, Config{peerUID: fakeUIDs(0)})
	fd, addr := boundDgram(t)
	if err := unix.Fchown(fd, 65534, -1); err != nil {
		t.Fatal(err)
	}
	// Root registers nobody's socket: allowed.
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: r.ctl, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := (&switchproto.Request{Version: 3, Addr: addr}).MarshalBinary()
	c.Write(raw)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var reply [switchproto.ReplySize]byte
	if n, err := c.Read(reply[:]); n != switchproto.ReplySize {
		t.Fatalf("root's registration: reply %d bytes, %v", n, err)
	}
	// nobody registers nobody's socket: allowed; uid 1000 does: refused.
	fd2, addr2 := boundDgram(t)
	unix.Fchown(fd2, 65534, -1)
	c2 := dialAs(t, r.ctl, 65534)
	raw, _ = (&switchproto.Request{Version: 3, Addr: addr2}).MarshalBinary()
	c2.Write(raw)
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c2.Read(reply[:]); n != switchproto.ReplySize {
		t.Fatalf("owner's registration: reply %d bytes, %v", n, err)
	}
	c3 := dialAs(t, r.ctl, 1000)
	c3.Write(raw)
	if !closedByPeer(c3, 2*time.Second) {
		t.Fatal("uid 1000 registered nobody's socket")
	}
	r.waitErr(t, "owned by uid 65534\n")
}

// TestDataAddressSwap: a client registers its own named socket, then puts a
// symlink to another socket in its place. Frames keep going to the socket
// that was checked (now gone), never to the new target.
func TestDataAddressSwap(t *testing.T) {
	for _, mode := range []string{"own sockets", "shared named socket"} {
		t.Run(mode, func(t *testing.T) {
			cfg := Config{}
			dir := t.TempDir()
			if mode != "own sockets" {
				cfg.DataPath = filepath.Join(dir, "sw.data")
			}
			r := startSwitch(t, cfg)
			victimPath := filepath.Join(dir, "victim")
			victim, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: victimPath, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer victim.Close()
			path := filepath.Join(dir, "mine")
			mine, err := switchtest.Dial(r.ctl, &switchtest.Options{Addr: ptr(mustNamed(t, path))})
			if err != nil {
				t.Fatal(err)
			}
			defer mine.Close()
			a := dial(t, r)
			f := switchtest.Frame(bc, macA, 60)
			a.Send(f)
			expectFrame(t, mine, f)
			// Swap: close and unlink the checked socket, symlink the victim.
			mine.CloseData()
			os.Remove(path)
			if err := os.Symlink(victimPath, path); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				a.Send(f)
			}
			victim.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			var b [2000]byte
			if n, _, err := victim.ReadFrom(b[:]); err == nil {
				t.Fatalf("victim behind the swapped path received %d bytes", n)
			}
		})
	}
}

func TestPeerOwner(t *testing.T) {
	_, addr := boundDgram(t)
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(c)
	if _, err := peerOwner(c); err != ErrNoPeer {
		t.Errorf("peerOwner(unconnected) = %v; want ErrNoPeer", err)
	}
	if err := connectClient(c, addr); err != nil {
		t.Fatal(err)
	}
	uid, err := peerOwner(c)
	if err != nil {
		t.Fatalf("peerOwner: %v", err)
	}
	if uid != uint32(os.Geteuid()) {
		t.Errorf("peerOwner = %d; want %d", uid, os.Geteuid())
	}
}

func TestConnectShortAbstract(t *testing.T) {
	// A client bound a 20-byte abstract name but sends it zero-padded.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	name := fmt.Sprintf("umlkit-short-%d", os.Getpid())
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: "@" + name}); err != nil {
		t.Fatal(err)
	}
	addr, _ := switchproto.AbstractSockaddr([]byte(name))
	c, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(c)
	if err := connectClient(c, addr); err != nil {
		t.Fatalf("connectClient(short abstract name): %v", err)
	}
}

// helpers

func ptr[T any](v T) *T { return &v }

func mustNamed(t *testing.T, path string) switchproto.Sockaddr {
	t.Helper()
	a, err := switchproto.NamedSockaddr(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// boundDgram binds a UML-style abstract datagram socket (closed at cleanup).
func boundDgram(t *testing.T) (int, switchproto.Sockaddr) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	addr := switchtest.UMLAddr()
	if err := sys.BindRaw(fd, addr[:]); err != nil {
		t.Fatal(err)
	}
	return fd, addr
}
