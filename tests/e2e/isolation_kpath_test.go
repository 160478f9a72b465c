package e2e

// Attacks on the kernel data path (docs/linux.md, "Kernel data path"):
// guest root owns one end of a veth pair whose other end sits in the host's
// namespace. Whatever it sends, however it changes its device, its frames
// may reach the tap it was given and nothing else, and the host end must
// stay inert.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// kpathProbeSrc is a static helper run as guest root: it sends raw frames
// on an interface through an AF_PACKET socket, each carrying
// "UMLKIT-KPATH-<kind>-" in its payload.
//
//	kpprobe IFACE frames       every kind of kpathKinds, 50 each
//	kpprobe IFACE flood N      N broadcast frames (kind flood)
//	kpprobe IFACE jumbo SIZE   one frame of SIZE bytes (kind jumbo)
var kpathProbeSrc = map[string]string{
	"go.mod": "module kpprobe\n\ngo 1.21\n",
	"main.go": `package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

type kind struct {
	name     string
	dst, src string
	tags     [][2]uint16 // TPID, TCI
	etype    uint16
}

var kinds = []kind{
	{"bcast", "ff:ff:ff:ff:ff:ff", "02:aa:bb:cc:dd:01", nil, 0x88b5},
	{"ucast", "02:11:22:33:44:55", "02:aa:bb:cc:dd:02", nil, 0x88b5},
	{"stp", "01:80:c2:00:00:00", "02:aa:bb:cc:dd:03", nil, 0x88b5},
	{"lldp", "01:80:c2:00:00:0e", "02:aa:bb:cc:dd:04", nil, 0x88cc},
	{"pause", "01:80:c2:00:00:01", "02:aa:bb:cc:dd:05", nil, 0x8808},
	{"vsixmc", "33:33:00:00:00:01", "02:aa:bb:cc:dd:06", nil, 0x86dd},
	{"srcbcast", "02:11:22:33:44:55", "ff:ff:ff:ff:ff:ff", nil, 0x88b5},
	{"srczero", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", nil, 0x88b5},
	{"vlan", "ff:ff:ff:ff:ff:ff", "02:aa:bb:cc:dd:07", [][2]uint16{{0x8100, 5}}, 0x88b5},
	{"qinq", "ff:ff:ff:ff:ff:ff", "02:aa:bb:cc:dd:08", [][2]uint16{{0x88a8, 7}, {0x8100, 5}}, 0x88b5},
	{"arp", "ff:ff:ff:ff:ff:ff", "02:aa:bb:cc:dd:09", nil, 0x0806},
}

func frame(k kind, size int) []byte {
	d, _ := net.ParseMAC(k.dst)
	s, _ := net.ParseMAC(k.src)
	b := append(append([]byte{}, d...), s...)
	for _, t := range k.tags {
		b = append(b, byte(t[0]>>8), byte(t[0]), byte(t[1]>>8), byte(t[1]))
	}
	b = append(b, byte(k.etype>>8), byte(k.etype))
	b = append(b, "UMLKIT-KPATH-"+k.name+"-"...)
	for len(b) < size {
		b = append(b, 0)
	}
	return b
}

func main() {
	ifi, err := net.InterfaceByName(os.Args[1])
	if err != nil {
		fmt.Println("PROBE-ERROR", err)
		os.Exit(1)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		fmt.Println("PROBE-ERROR", err)
		os.Exit(1)
	}
	sa := &syscall.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: 0xb588}
	send := func(k kind, n, size int) {
		f, sent := frame(k, size), 0
		var first error
		for i := 0; i < n; i++ {
			if err := syscall.Sendto(fd, f, 0, sa); err == nil {
				sent++
			} else if first == nil {
				first = err
			}
		}
		fmt.Printf("SENT %s %d\n", k.name, sent)
		if first != nil {
			fmt.Printf("SEND-ERROR %s %v\n", k.name, first)
		}
	}
	switch os.Args[2] {
	case "frames":
		for _, k := range kinds {
			send(k, 50, 64)
		}
	case "flood":
		n, _ := strconv.Atoi(os.Args[3])
		send(kind{"flood", "ff:ff:ff:ff:ff:ff", "02:aa:bb:cc:dd:0a", nil, 0x88b5}, n, 64)
	case "jumbo":
		size, _ := strconv.Atoi(os.Args[3])
		send(kind{"jumbo", "02:11:22:33:44:55", "02:aa:bb:cc:dd:0b", nil, 0x88b5}, 1, size)
	}
}
`,
}

// kpathKinds are the probe's "frames" kinds.
var kpathKinds = []string{"bcast", "ucast", "stp", "lldp", "pause", "vsixmc", "srcbcast", "srczero", "vlan", "qinq", "arp"}

// buildStatic builds the Go program src (files by name) for linux/amd64
// without cgo and returns the binary's content; it skips without a Go
// toolchain.
func buildStatic(t *testing.T, src map[string]string, name string) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the probe helper is amd64 only")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	for n, c := range src {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(gobin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the probe helper with %s: %v\n%s", gobin, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// frameCounter counts the probe's frames seen by a packet socket on every
// interface of one network namespace, by interface index and kind.
type frameCounter struct {
	fd   int
	mu   sync.Mutex
	seen map[int]map[string]int // ifindex → kind → frames
	done chan struct{}
	stop chan struct{}
}

var markerRE = regexp.MustCompile(`UMLKIT-KPATH-([a-z]+)-`)

// countFrames starts counting in network namespace ns (a name under
// /run/netns).
func countFrames(t *testing.T, ns string) *frameCounter {
	t.Helper()
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- res{-1, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons16(unix.ETH_P_ALL)))
		ch <- res{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("packet socket in %s: %v", ns, r.err)
	}
	unix.SetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
	unix.SetsockoptTimeval(r.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	c := &frameCounter{fd: r.fd, seen: map[int]map[string]int{}, done: make(chan struct{}), stop: make(chan struct{})}
	go c.loop()
	t.Cleanup(c.close)
	return c
}

func htons16(v uint16) uint16 { return v<<8 | v>>8 }

func (c *frameCounter) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue
		}
		m := markerRE.FindSubmatch(buf[:n])
		ll, ok := from.(*unix.SockaddrLinklayer)
		if m == nil || !ok {
			continue
		}
		c.mu.Lock()
		if c.seen[ll.Ifindex] == nil {
			c.seen[ll.Ifindex] = map[string]int{}
		}
		c.seen[ll.Ifindex][string(m[1])]++
		c.mu.Unlock()
	}
}

func (c *frameCounter) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	unix.Close(c.fd)
}

// counts returns a copy of what was counted so far.
func (c *frameCounter) counts() map[int]map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]map[string]int{}
	for i, m := range c.seen {
		out[i] = map[string]int{}
		for k, v := range m {
			out[i][k] = v
		}
	}
	return out
}

// ifindexIn returns the index of interface name in ns.
func ifindexIn(t *testing.T, ns, name string) int {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", "dev", name).Output()
	if err != nil {
		t.Fatalf("ip -n %s link show %s: %v", ns, name, err)
	}
	var ls []struct {
		Index int `json:"ifindex"`
	}
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("ip -j link show %s: %v %s", name, err, out)
	}
	return ls[0].Index
}

// kpathAttackScript runs as guest root on eth0 (the kernel data path to
// the tap vh1 at 10.77.9.1).
const kpathAttackScript = `chmod 755 /kpprobe
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.9.2 netmask 255.255.255.0 up
echo "LINK $(cat /sys/class/net/eth0/iflink) $(cat /sys/class/net/eth0/ifindex)"
echo "GUEST-LINKS $(ls /sys/class/net | tr '\n' ' ')"
ping -c 1 -W 2 10.77.9.1 >/dev/null && echo PING-OK
/kpprobe eth0 frames
# a new address, promiscuous mode, a jumbo MTU and frame, a flood
ifconfig eth0 down; ifconfig eth0 hw ether 02:de:ad:be:ef:01 && ifconfig eth0 up && echo MAC-CHANGED
ifconfig eth0 promisc && echo PROMISC-ON
ifconfig eth0 mtu 9000 && echo MTU-9000 && /kpprobe eth0 jumbo 8000
ifconfig eth0 mtu 1500
/kpprobe eth0 flood 20000
echo ATTACK-SENT
read line
# its own end is all it can delete
ip link del eth0 && echo ETH0-DELETED
echo "GUEST-LINKS-AFTER $(ls /sys/class/net | tr '\n' ' ')"
echo ATTACK-DONE
read line
poweroff -f`

// TestIntegrationIsolationKernelPath: guest root on a device of the
// kernel data path sends frames of every kind (broadcast, unicast to
// foreign MACs, bridge and link-local group addresses, pause, IPv6
// multicast, spoofed broadcast and zero sources, 802.1Q and QinQ tags,
// ARP), changes its MAC, goes promiscuous, raises its MTU and sends a jumbo
// frame, floods 20000 frames, and finally deletes its device. Every frame
// reaches the tap and no other interface of the host's namespace (a
// witness veth pair there and in a second namespace sees none), the jumbo
// frame goes nowhere, the host end stays without addresses, neighbours or
// routes, ARP and IPv6 off, the guest sees only its own end, and deleting
// it removes the pair and leaves the tap.
func TestIntegrationIsolationKernelPath(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTUN(t)
	requireTCX(t)
	probe := buildStatic(t, kpathProbeSrc, "kpprobe")
	ns := hostLink(t, true)
	wit := testutil.NetNS(t)
	run(t, "ip", "-n", ns, "link", "add", "wit0", "type", "veth", "peer", "name", "wit1", "netns", wit)
	run(t, "ip", "-n", ns, "addr", "add", "10.77.8.1/24", "dev", "wit0")
	run(t, "ip", "-n", ns, "link", "set", "wit0", "up")
	run(t, "ip", "-n", wit, "link", "set", "wit1", "up", "promisc", "on")
	hostSide, witness := countFrames(t, ns), countFrames(t, wit)

	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: kpathAttackScript, Files: map[string]string{"kpprobe": probe}, SizeMB: 96})
	g := bootLinuxIn(t, ns, img, "eth0=tuntap,vh1")
	if err := g.WaitOutput("ATTACK-SENT", 2*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	out := g.Output()
	for _, want := range []string{"eth0: kernel data path to host tap vh1", "PING-OK", "MAC-CHANGED", "PROMISC-ON", "MTU-9000", "SENT flood 20000", "GUEST-LINKS eth0 lo"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the guest's log lacks %q:\n%s", want, out)
		}
	}
	ends := hostEnds(t, ns)
	if len(ends) != 1 {
		t.Fatalf("host ends: %v; want one", ends)
	}
	end := ends[0]
	tap := ifindexIn(t, ns, "vh1")
	// Let the last frames arrive, then compare.
	testutil.WaitFor(5*time.Second, func() bool { return hostSide.counts()[tap]["flood"] >= 20000 })
	time.Sleep(500 * time.Millisecond)
	seen := hostSide.counts()
	for _, k := range kpathKinds {
		if seen[tap][k] == 0 {
			t.Errorf("no %s frame reached the tap (the guest's frames must: it is the device's wire)", k)
		}
	}
	if n := seen[tap]["flood"]; n < 20000 {
		t.Errorf("%d frames of the flood reached the tap; want all 20000", n)
	}
	for ifindex, kinds := range seen {
		if ifindex != tap && ifindex != end.Index && len(kinds) > 0 {
			t.Errorf("the guest's frames reached interface %d of the host's namespace: %v", ifindex, kinds)
		}
	}
	// The jumbo frame dies at the host end (its MTU is the tap's): the
	// guest's send fails with ENOBUFS there.
	if n := seen[tap]["jumbo"]; n != 0 {
		t.Errorf("the 8000-byte frame reached the tap (MTU 1500): %d", n)
	}
	if w := witness.counts(); len(w) > 0 {
		t.Errorf("the guest's frames reached the witness namespace: %v", w)
	}
	// The host end is inert: no addresses, neighbours or routes; ARP and
	// IPv6 off; and labelled.
	if !slices.Contains(end.Flags, "NOARP") || end.Alias != "umlkit kernel data path of eth0" {
		t.Errorf("host end %s: flags %v, alias %q", end.Name, end.Flags, end.Alias)
	}
	for _, q := range [][]string{{"addr", "show", "dev", end.Name}, {"neigh", "show", "dev", end.Name}, {"-6", "neigh", "show", "dev", end.Name}, {"route", "show", "dev", end.Name}, {"-6", "route", "show", "dev", end.Name}} {
		b, _ := exec.Command("ip", append([]string{"-n", ns}, q...)...).Output()
		if bytes.Contains(b, []byte("inet")) || (q[0] != "addr" && len(bytes.TrimSpace(b)) > 0) {
			t.Errorf("ip %v on the host end:\n%s", q, b)
		}
	}
	if b, err := testutil.InNetNS(ns, "cat", "/proc/sys/net/ipv6/conf/"+end.Name+"/disable_ipv6").Output(); err == nil && strings.TrimSpace(string(b)) != "1" {
		t.Errorf("host end's disable_ipv6 = %q", b)
	}
	// Deleting its end: the pair goes, the tap stays.
	g.Stdin().Write([]byte("\n"))
	if err := g.WaitOutput("ATTACK-DONE", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	if !strings.Contains(g.Output(), "ETH0-DELETED") || !strings.Contains(g.Output(), "GUEST-LINKS-AFTER lo") {
		t.Errorf("the guest could not delete its own eth0:\n%s", g.Output())
	}
	if left := hostEnds(t, ns); len(left) != 0 {
		t.Errorf("the host end outlived the guest's: %v", left)
	}
	if ifindexIn(t, ns, "vh1") != tap {
		t.Errorf("the tap changed")
	}
	g.Stdin().Write([]byte("\n"))
	g.Wait(30 * time.Second)
	t.Logf("frames seen in the host's namespace by interface: %v (tap %d, host end %d)", seen, tap, end.Index)
}
