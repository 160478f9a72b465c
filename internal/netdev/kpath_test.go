//go:build linux

package netdev

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

// kpathLink is a link as `ip -j -d link` shows it.
type kpathLink struct {
	Name     string   `json:"ifname"`
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	Address  string   `json:"address"`
	Alias    string   `json:"ifalias"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
}

// links returns the links of ns.
func links(t *testing.T, ns string) []kpathLink {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-d", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip -n %s link: %v", ns, err)
	}
	var ls []kpathLink
	if err := json.Unmarshal(out, &ls); err != nil {
		t.Fatal(err)
	}
	return ls
}

// linkNamed returns ns's link name, or nil.
func linkNamed(t *testing.T, ns, name string) *kpathLink {
	for _, l := range links(t, ns) {
		if l.Name == name {
			return &l
		}
	}
	return nil
}

// hostEndsIn returns the kernel data path's host ends in ns.
func hostEndsIn(t *testing.T, ns string) []kpathLink {
	var ends []kpathLink
	for _, l := range links(t, ns) {
		if strings.HasPrefix(l.Name, hostEndPrefix) {
			ends = append(ends, l)
		}
	}
	return ends
}

func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v\n%s", ns, args, err, out)
	}
}

// pingFrom pings addr from ns (busybox ping) and reports whether it
// answered.
func pingFrom(ns, addr string) bool {
	return testutil.InNetNS(ns, "/bin/busybox", "ping", "-c", "1", "-W", "2", addr).Run() == nil
}

// inNS runs f on a thread in network namespace ns (as P runs in the
// host's).
func inNS(t *testing.T, ns string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		lockInNetNS(t, ns)
		f()
	}()
	<-done
}

// TestIntegrationKernelPath joins a device to a tap (tuntap) and to a veth
// end (vec raw) of a "host" namespace, with a second namespace as K's:
// the device appears there as a veth end with the device's MAC and MTU, the
// two namespaces ping each other over it, the host end is inert (ARP off,
// IPv6 off, no addresses, labelled), a raw device's packet socket is muted
// while the path is up, K's side adopts the device, and leaving takes the
// pair away with nothing left.
func TestIntegrationKernelPath(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	for _, c := range []struct {
		name, spec string
		vector     bool
		setup      [][]string // in the host namespace
		dev        string     // the device's name in the guest's namespace
	}{
		{"tuntap", "tuntap,kt0,02:00:0a:42:00:02", false, nil, "eth0"},
		{"raw", "transport=raw,ifname=kv1,mac=02:00:0a:42:00:02", true, [][]string{
			{"link", "add", "kv0", "type", "veth", "peer", "name", "kv1"},
			{"link", "set", "kv1", "up"},
		}, "vec0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			host, guest := testutil.NetNS(t), testutil.NetNS(t)
			for _, argv := range c.setup {
				ipIn(t, host, argv...)
			}
			var o *Opened
			var err error
			inNS(t, host, func() {
				h := &Host{}
				if c.vector {
					o, err = OpenVector(h, 0, c.spec)
				} else {
					o, err = Open(h, 0, c.spec)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			addr := "kt0"
			if c.vector {
				addr = "kv0"
			}
			ipIn(t, host, "addr", "add", "10.66.0.1/24", "dev", addr)
			ipIn(t, host, "link", "set", addr, "up")
			if got := o.KernelPathTarget(); got != map[bool]string{false: "kt0", true: "kv1"}[c.vector] {
				t.Fatalf("KernelPathTarget = %q", got)
			}
			ns, err := os.Open("/run/netns/" + guest)
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			var desc string
			inNS(t, host, func() { desc, err = o.JoinKernel(ns) })
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(desc, c.dev+": kernel data path to host ") || !o.KernelPathUp() {
				t.Errorf("JoinKernel = %q, up %v", desc, o.KernelPathUp())
			}
			d := linkNamed(t, guest, c.dev)
			if d == nil || d.LinkInfo.Kind != "veth" || d.Address != "02:00:0a:42:00:02" || d.MTU != MTU || slices.Contains(d.Flags, "UP") {
				t.Fatalf("guest's %s = %+v; want a veth, 02:00:0a:42:00:02, mtu %d, down", c.dev, d, MTU)
			}
			ends := hostEndsIn(t, host)
			if len(ends) != 1 {
				t.Fatalf("host ends: %+v; want one", ends)
			}
			e := ends[0]
			if !slices.Contains(e.Flags, "NOARP") || !slices.Contains(e.Flags, "UP") || e.Alias != "umlkit kernel data path of "+c.dev || e.MTU != 1500 {
				t.Errorf("host end %+v: want UP, NOARP, the alias, mtu 1500", e)
			}
			if out, _ := exec.Command("ip", "-n", host, "addr", "show", "dev", e.Name).Output(); bytes.Contains(out, []byte("inet")) {
				t.Errorf("host end has addresses:\n%s", out)
			}
			if out, err := testutil.InNetNS(host, "cat", "/proc/sys/net/ipv6/conf/"+e.Name+"/disable_ipv6").Output(); err == nil && strings.TrimSpace(string(out)) != "1" {
				t.Errorf("host end's disable_ipv6 = %q", out)
			}
			var kd *KernelDev
			inNS(t, guest, func() { kd, err = AdoptKernelDev(c.dev) })
			if err != nil {
				t.Fatalf("AdoptKernelDev: %v", err)
			}
			if c.vector { // gro=0: the device sends no large segments (pinged below)
				inNS(t, guest, func() { err = kd.OffloadsOff() })
				if err != nil {
					t.Errorf("OffloadsOff: %v", err)
				}
			}
			ipIn(t, guest, "addr", "add", "10.66.0.2/24", "dev", c.dev)
			ipIn(t, guest, "link", "set", c.dev, "up")
			if !pingFrom(guest, "10.66.0.1") || !pingFrom(host, "10.66.0.2") {
				t.Fatalf("no ping between the namespaces over the kernel data path")
			}
			if c.vector && queued(o.File) {
				t.Errorf("the raw device's packet socket receives while the path is up")
			}
			o.LeaveKernel()
			if o.KernelPathUp() || len(hostEndsIn(t, host)) != 0 || linkNamed(t, guest, c.dev) != nil {
				t.Errorf("after LeaveKernel: up %v, host ends %v, guest's %s %v", o.KernelPathUp(), hostEndsIn(t, host), c.dev, linkNamed(t, guest, c.dev))
			}
			if err := kd.Stop(); err != nil {
				t.Errorf("Stop of a device already gone: %v", err)
			}
			if c.vector {
				pingFrom(host, "10.66.0.9") // a frame on the wire for the socket to see again
				if !queued(o.File) {
					t.Errorf("the raw device's packet socket is still muted after LeaveKernel")
				}
			} else if linkNamed(t, host, "kt0") == nil {
				t.Errorf("the tap went with the kernel data path")
			}
		})
	}
}

// queued reports whether packet socket f has a frame ready.
func queued(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	rc.Control(func(fd uintptr) {
		var b [64]byte // room for the vnet header
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_DONTWAIT|unix.MSG_PEEK|unix.MSG_TRUNC)
		ready = err == nil
	})
	return ready
}
