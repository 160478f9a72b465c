//go:build linux

package uswitch

import (
	"bytes"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// guestSide is a TAP with vnet headers in a network namespace of the test
// (the guest's device) and a packet socket on it: what the switch writes
// into the TAP arrives on the socket, what the socket sends leaves through
// the TAP to its reader.
type guestSide struct {
	tap  *tuntap.Device
	sock int
}

func newGuestSide(t *testing.T, vnet bool) *guestSide {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	type result struct {
		g   *guestSide
		err error
	}
	res, done := make(chan result), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		g, err := func() (*guestSide, error) {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return nil, os.NewSyscallError("unshare", err)
			}
			os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0)
			os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
			tap, err := tuntap.Open(tuntap.Config{Name: "gt0", Mode: tuntap.TAP, VnetHdr: vnet})
			if err != nil {
				return nil, err
			}
			link, err := netlink.LinkByName("gt0")
			if err == nil {
				err = netlink.LinkSetUp(link)
			}
			if err != nil {
				tap.Close()
				return nil, err
			}
			sock, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
			if err == nil {
				err = unix.Bind(sock, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: link.Attrs().Index})
			}
			if err == nil {
				err = unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
			}
			if err != nil {
				tap.Close()
				return nil, err
			}
			return &guestSide{tap: tap, sock: sock}, nil
		}()
		res <- result{g, err}
		<-done
	}()
	r := <-res
	if r.err != nil {
		close(done)
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		r.g.tap.Close()
		unix.Close(r.g.sock)
		close(done)
	})
	return r.g
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recvFrom waits for a frame whose source is src on the guest side.
func (g *guestSide) recvFrom(t *testing.T, src [6]byte) []byte {
	t.Helper()
	buf := make([]byte, 70000)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(g.sock, buf, 0)
		if err != nil {
			continue
		}
		if n >= 14 && bytes.Equal(buf[6:12], src[:]) {
			return buf[:n]
		}
	}
	t.Fatalf("no frame from %x reached the guest's side", src)
	return nil
}

// TestAttachTap: a vnet client hands the switch its guest's TAP; the
// switch answers, and frames then go between the TAP and the other ports
// without the client's socket.
func TestAttachTap(t *testing.T) {
	g := newGuestSide(t, true)
	r := startSwitch(t, Config{})
	a, c := dialVnet(t, r), dial(t, r)
	if err := a.SendRights([]byte(switchproto.AttachTap), int(g.tap.File().Fd())); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := a.Recv(buf, 2*time.Second)
	if err != nil || string(buf[:n]) != switchproto.Attached {
		t.Fatalf("answer to the attach: %q, %v", buf[:n], err)
	}
	// The guest sends (out of its TAP): the switch reads it and C gets it.
	out := plainFrame(macA, bc, 60)
	if _, err := unix.Write(g.sock, out); err != nil { // a bound packet socket sends on its device
		t.Fatal(err)
	}
	expectFrame(t, c, out)
	// C answers: the switch writes into the TAP, the guest receives it.
	in := plainFrame(macC, macA, 60)
	if err := c.Send(in); err != nil {
		t.Fatal(err)
	}
	if got := g.recvFrom(t, macC); !bytes.Equal(got, in) {
		t.Fatalf("the guest got %x, want %x", got, in)
	}
	expectNothing(t, a) // nothing on the client's own socket any more
	r.sigs <- syscall.SIGUSR1
	r.waitOut(t, ", vnet, device attached): rx 1 frames 60 bytes, tx 1 frames 70 bytes")
}

// TestAttachRefused: descriptors that are not a vnet TAP, or that come
// from a port without the extension, are closed and counted.
func TestAttachRefused(t *testing.T) {
	plainTap := newGuestSide(t, false)
	r := startSwitch(t, Config{})
	a, c := dialVnet(t, r), dial(t, r)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if err := a.SendRights([]byte(switchproto.AttachTap), int(pr.Fd())); err != nil {
		t.Fatal(err)
	}
	r.waitErr(t, "Refusing the device of port")
	if err := a.SendRights([]byte(switchproto.AttachTap), int(plainTap.tap.File().Fd())); err != nil {
		t.Fatal(err)
	}
	if err := testutil.WaitFor(3*time.Second, func() bool {
		return bytes.Count([]byte(r.errb.String()), []byte("Refusing the device of port")) == 2
	}); err != nil {
		t.Fatalf("a TAP without vnet headers was not refused:\n%s", r.errb.String())
	}
	if err := c.SendRights([]byte(switchproto.AttachTap), int(pr.Fd())); err != nil {
		t.Fatal(err)
	}
	r.waitErr(t, "Datagram with descriptors from port")
	expectNothing(t, a)
	// The switch keeps no copy: the pipe's write end sees no reader once
	// ours is closed.
	pr.Close()
	time.Sleep(100 * time.Millisecond)
	if _, err := pw.Write([]byte("x")); err == nil {
		t.Error("the switch still holds the pipe's read end")
	}
}
