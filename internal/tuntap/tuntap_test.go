//go:build linux

package tuntap

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		c    Config
		want uint16
	}{
		{Config{}, unix.IFF_TAP | unix.IFF_NO_PI},
		{Config{Mode: TUN}, unix.IFF_TUN | unix.IFF_NO_PI},
		{Config{PacketInfo: true}, unix.IFF_TAP},
		{Config{VnetHdr: true}, unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR},
	}
	for _, tt := range tests {
		if got := tt.c.Flags(); got != tt.want {
			t.Errorf("%+v.Flags() = %#x; want %#x", tt.c, got, tt.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"", "tap0", "umltap-1", "tap%d", "a23456789012345"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{".", "..", "a/b", "a b", "a:b", "a\nb", "a234567890123456", "a\xa0", "a\x00"} {
		if err := CheckName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v; want ErrBadName", bad, err)
		}
	}
}

func TestOpenMissingCloneDevice(t *testing.T) {
	_, err := Open(Config{CloneDevice: t.TempDir() + "/nope"})
	var pe *os.PathError
	if !errors.As(err, &pe) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Open(missing clone) = %v; want *os.PathError ENOENT", err)
	}
}

// inNewNetNS runs f on a locked OS thread moved into a fresh network
// namespace; the thread is discarded afterwards (never unlocked).
func inNewNetNS(t *testing.T, f func()) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	done := make(chan struct{})
	var skip error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip = err
			return
		}
		f()
	}()
	<-done
	if skip != nil {
		testutil.Skip(t, "unshare(CLONE_NEWNET): %v", skip)
	}
}

func TestIntegrationTapLifecycle(t *testing.T) {
	inNewNetNS(t, func() {
		d, err := Open(Config{})
		if err != nil {
			t.Error(err)
			return
		}
		if d.Name() != "tap0" {
			t.Errorf("kernel-chosen name = %q; want tap0", d.Name())
		}
		if err := d.SetPersist(true); err != nil {
			t.Error(err)
		}
		if err := d.SetOwner(65534); err != nil {
			t.Error(err)
		}
		if err := d.SetGroup(100); err != nil {
			t.Error(err)
		}
		d.Close()
		d.Close() // idempotent
		list, err := List()
		if err != nil {
			t.Error(err)
			return
		}
		want := Info{Name: "tap0", Mode: "tap", Flags: unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_PERSIST, Owner: 65534, Group: 100, Persistent: true}
		if len(list) != 1 || list[0] != want {
			t.Errorf("List() = %+v; want [%+v]", list, want)
		}
		if err := Delete("tap0", ""); err != nil {
			t.Error(err)
		}
		if _, err := net.InterfaceByName("tap0"); err == nil {
			t.Error("tap0 still exists after Delete")
		}
		tun, err := Open(Config{Mode: TUN, Name: "umltun%d"})
		if err != nil {
			t.Error(err)
			return
		}
		defer tun.Close()
		if tun.Name() != "umltun0" || tun.Mode() != TUN {
			t.Errorf("TUN device = %q %v; want umltun0 tun", tun.Name(), tun.Mode())
		}
	})
}

// TestIntegrationTapFrames proves the file is poller-backed: a read blocks
// until the kernel emits an ARP request, a deadline unblocks an idle read,
// and a written frame is accounted by the kernel.
func TestIntegrationTapFrames(t *testing.T) {
	inNewNetNS(t, func() {
		d, err := Open(Config{Name: "umltap0"})
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		buf := make([]byte, 2048)
		d.File().SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := d.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("idle Read = %v; want deadline exceeded", err)
		}
		link, err := netlink.LinkByName("umltap0")
		if err != nil {
			t.Error(err)
			return
		}
		addr, _ := netlink.ParseAddr("10.77.0.1/24")
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Error(err)
			return
		}
		if err := netlink.LinkSetUp(link); err != nil {
			t.Error(err)
			return
		}
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2), Port: 9})
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		c.Write([]byte("x"))
		d.File().SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, err := d.Read(buf)
			if err != nil {
				t.Errorf("Read: %v", err)
				return
			}
			// Ethernet type ARP, target protocol address 10.77.0.2.
			if n >= 42 && buf[12] == 0x08 && buf[13] == 0x06 && net.IP(buf[38:42]).Equal(net.IPv4(10, 77, 0, 2)) {
				break
			}
		}
		frame := make([]byte, 60)
		copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
		if n, err := d.Write(frame); err != nil || n != len(frame) {
			t.Errorf("Write = %d, %v; want %d, nil", n, err, len(frame))
		}
		l2, _ := netlink.LinkByName("umltap0")
		if l2.Attrs().Statistics.RxPackets < 1 {
			t.Errorf("kernel rx_packets = %d after a write; want >= 1", l2.Attrs().Statistics.RxPackets)
		}
	})
}

// TestParseLinkGolden decodes RTM_NEWLINK messages captured from the kernel
// (testdata/fuzz/FuzzParseLink: lo, a persistent tap owned by uid 1000, a
// TUN with packet information).
func TestParseLinkGolden(t *testing.T) {
	want := map[string]Info{
		"link1": {Name: "tap0", Mode: "tap", Flags: unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_PERSIST, Owner: 1000, Group: -1, Persistent: true},
		"link2": {Name: "tun0", Mode: "tun", Flags: unix.IFF_TUN, Owner: -1, Group: -1, PacketInfo: true},
	}
	for name, w := range want {
		raw := readSeed(t, "testdata/fuzz/FuzzParseLink/"+name)
		got, ok := parseLink(raw)
		if !ok || got != w {
			t.Errorf("parseLink(%s) = %+v, %v; want %+v", name, got, ok, w)
		}
	}
	if _, ok := parseLink(readSeed(t, "testdata/fuzz/FuzzParseLink/link0")); ok {
		t.Error("parseLink(lo) reported a TUN/TAP device")
	}
}

// readSeed decodes a one-value `go test fuzz v1` []byte corpus file.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

func FuzzParseLink(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, ok := parseLink(b)
		if !ok {
			return
		}
		if in.Mode != "tap" && in.Mode != "tun" {
			t.Fatalf("mode %q", in.Mode)
		}
		if strings.ContainsRune(in.Name, 0) {
			t.Fatalf("name %q contains NUL", in.Name)
		}
		if in.Persistent != (in.Flags&unix.IFF_PERSIST != 0) || in.PacketInfo != (in.Flags&unix.IFF_NO_PI == 0) {
			t.Fatalf("inconsistent %+v", in)
		}
	})
}

func TestIntegrationOpenInNetNS(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	// A namespace held by a helper thread: its path is /proc/self/task/<tid>/ns/net.
	nsPath := make(chan string)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			nsPath <- ""
			return
		}
		nsPath <- "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		<-release
	}()
	p := <-nsPath
	defer close(release)
	if p == "" {
		testutil.Skip(t, "unshare(CLONE_NEWNET) failed")
	}
	d, err := OpenInNetNS(p, Config{Name: "nstap0"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := net.InterfaceByName("nstap0"); err == nil {
		t.Error("nstap0 appeared in the test's own namespace")
	}
	if d.Name() != "nstap0" {
		t.Errorf("name %q", d.Name())
	}
	if _, err := OpenInNetNS(t.TempDir()+"/none", Config{}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("OpenInNetNS(missing) = %v; want ENOENT", err)
	}
}
