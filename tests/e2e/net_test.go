package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationTunctlMatchesReal runs the same sequence of tunctl command
// lines with our tunctl and Debian's, each in its own fresh network
// namespace, both found as plain "tunctl" through PATH (same argv[0]), and
// compares stdout, stderr and exit status byte for byte. Device names are
// not normalised: each namespace starts empty, so the kernel picks the same
// names.
func TestIntegrationTunctlMatchesReal(t *testing.T) {
	real := testutil.Peer(t, "tunctl", "uml-utilities")
	ours := harness.Bin(t, "tunctl")
	testutil.RequireTUN(t)
	nsOurs, nsReal := testutil.NetNS(t), testutil.NetNS(t)
	pathOurs := harness.PathDir(t, "tunctl", ours)
	pathReal := harness.PathDir(t, "tunctl", real)
	steps := [][]string{
		{},
		{"-b"},
		{"-t", "umltap0"},
		{"-b", "-t", "foo"},
		{"-u", "nobody", "-t", "t2"},
		{"-u", "0x10", "-t", "t3"},
		{"-u", "bogus"},
		{"-g", "bogus"},
		{"-g", "100", "-t", "t4"},
		{"-u", "nobody", "-g", "nogroup", "-t", "t5"},
		{"-u", "root", "-g", "root", "-b"},
		{"-d", "t5"},
		{"-d", "nonexist9"},
		{"-b", "-d", "t4"},
		{"-h"},
		{"-x"},
		{"-p"},
		{"-n"},
		{"--foo"},
		{"extra"},
		{"-t", "t9", "extra"},
		{"--", "-t", "x"},
		{"-t"},
		{"-d"},
		{"-f", "/nonexistent/tun"},
		{"-f", "/dev/null", "-t", "t15"},
		{"-t", "a/b"},
		{"-t", "a b"},
		{"-t", "aaaaaaaaaaaaaaaaaaaa"},
		{"-u", "-5", "-t", "t6"},
		{"-u", "12abc", "-t", "t7"},
		{"-g", "", "-t", "t8"},
		{"-t", "tun%d"},
		{"-u", "1000", "-t", "t2"},
		{"-bt", "t10"},
		{"-tt11"},
		{"-d", "t10", "-t", "t12"},
		{"-t", "t13", "-d", "t13"},
		{"-u", "1", "-u", "2", "-t", "t14"},
		{"-b"},
	}
	for _, args := range steps {
		argv := append([]string{"tunctl"}, args...)
		got := harness.RunInNetNS(t, nsOurs, []string{"PATH=" + pathOurs + ":/usr/bin:/bin"}, argv...)
		want := harness.RunInNetNS(t, nsReal, []string{"PATH=" + pathReal + ":/usr/bin:/bin"}, argv...)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("tunctl %q differs from Debian's (-real +ours):\n%s", args, d)
		}
	}
	// The resulting devices are the same too (name, owner, group, persist).
	links := func(ns string) string {
		r := harness.RunInNetNS(t, ns, nil, "ip", "-d", "-o", "link", "show", "type", "tun")
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			b.WriteString(f[1])
			for i, w := range f {
				if (w == "user" || w == "group" || w == "persist" || w == "type") && i+1 < len(f) && f[i-1] != "link/ether" {
					b.WriteString(" " + w + "=" + f[i+1])
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if d := cmp.Diff(links(nsReal), links(nsOurs)); d != "" {
		t.Errorf("devices differ (-real +ours):\n%s", d)
	}
	if !strings.Contains(links(nsOurs), "t14:") {
		t.Errorf("expected device t14 in:\n%s", links(nsOurs))
	}
}

// pingImage is a busybox root whose /init configures eth0 with addr (and
// netmask if not empty), pings peer and reports the status.
func pingImage(t *testing.T, addr, netmask, peer string) string {
	t.Helper()
	mask := ""
	if netmask != "" {
		mask = " netmask " + netmask
	}
	return harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "ifconfig eth0 " + addr + mask + " up\n" +
		"ping -c 3 -W 3 " + peer + "\necho PING-STATUS=$?\nifconfig eth0 down\npoweroff -f\n"})
}

func waitPing(t *testing.T, g *harness.Guest) {
	t.Helper()
	if err := g.WaitOutput("PING-STATUS=", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.Output(), "PING-STATUS=0") {
		t.Fatalf("guest ping failed:\n%s", g.Output())
	}
	if _, err := g.Wait(30 * time.Second); err != nil {
		t.Error(err)
	}
}

// TestIntegrationRealUMLWithOurUMLNet boots Debian's linux.uml inside a
// fresh netns with eth0=tuntap,,,HOST_IP and our uml_net first in PATH: the
// kernel execs it, receives the tap fd, runs the add hooks; the guest pings
// the host side.
func TestIntegrationRealUMLWithOurUMLNet(t *testing.T) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	path := harness.PathDir(t, "uml_net", harness.Bin(t, "uml_net"))
	img := pingImage(t, "10.0.1.2", "", "10.0.1.1")
	g := harness.BootRealUMLInNetNS(t, ns, []string{"PATH=" + path + ":/usr/bin:/bin:/usr/sbin:/sbin"}, img, "eth0=tuntap,,,10.0.1.1", "umid=netuml")
	waitPing(t, g)
	out := g.Output()
	if testing.Verbose() {
		t.Logf("guest console:\n%s", out)
	}
	for _, want := range []string{
		"* ifconfig tap0 10.0.1.1 netmask 255.255.255.255 up",
		"* bash -c echo 1 > /proc/sys/net/ipv4/ip_forward",
		"* route add -host 10.0.1.2 dev tap0",
		"* bash -c echo 1 > /proc/sys/net/ipv4/conf/tap0/proxy_arp",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kernel log lacks %q", want)
		}
	}
	// The tap was not persistent: it went away with the kernel.
	if r := harness.RunInNetNS(t, ns, nil, "ip", "link", "show", "tap0"); r.Code == 0 {
		t.Errorf("tap0 still exists after the guest exited:\n%s", r.Stdout)
	}
}

// TestIntegrationRealUMLOnOurTunctlTap boots Debian's linux.uml with
// eth0=tuntap,umltap0 on a tap made by our tunctl -u UID; the host side
// address is configured on the tap and the guest pings it.
func TestIntegrationRealUMLOnOurTunctlTap(t *testing.T) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	tunctl := harness.Bin(t, "tunctl")
	uid := strconv.Itoa(os.Getuid())
	r := harness.RunInNetNS(t, ns, nil, tunctl, "-u", uid, "-t", "umltap0")
	if r.Code != 0 || r.Stdout != "Set 'umltap0' persistent and owned by uid "+uid+"\n" {
		t.Fatalf("tunctl = %+v", r)
	}
	for _, argv := range [][]string{{"ip", "addr", "add", "10.0.2.1/24", "dev", "umltap0"}, {"ip", "link", "set", "umltap0", "up"}} {
		if r := harness.RunInNetNS(t, ns, nil, argv...); r.Code != 0 {
			t.Fatalf("%q: %+v", argv, r)
		}
	}
	img := pingImage(t, "10.0.2.2", "255.255.255.0", "10.0.2.1")
	g := harness.BootRealUMLInNetNS(t, ns, nil, img, "eth0=tuntap,umltap0", "umid=nettunctl")
	waitPing(t, g)
	if r := harness.RunInNetNS(t, ns, nil, tunctl, "-d", "umltap0"); r.Code != 0 || r.Stdout != "Set 'umltap0' nonpersistent\n" {
		t.Errorf("tunctl -d = %+v", r)
	}
}
