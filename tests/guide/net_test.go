package guide

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationGuideNetworkLab: chapter 4, our linux and Debian's
// linux.uml on our uml_switch with a tap uplink made by our tunctl, all
// inside a network namespace the test creates (the guide's "umllab",
// renamed).
func TestIntegrationGuideNetworkLab(t *testing.T) {
	requireLinux(t)
	harness.RealUML(t)
	testutil.RequireTUN(t)
	testutil.Peer(t, "busybox", "busybox-static")
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	s := newSession(t)
	ns := s.netLab("umlguide")
	want(t, "net-tap", s.run("net-tap"), "Set 'umltap0' persistent and owned by uid 0")

	sw := s.start("net-switch")
	if err := sw.WaitOutput("attached to unix socket '"+s.dir+"/lab.ctl' tap device 'umltap0'", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	a := s.start("net-guest-a")
	b := s.start("net-guest-b")
	s.waitPrompt(a, 1)
	s.waitPrompt(b, 1)
	for _, g := range []*harness.Guest{a, b} {
		want(t, "net-guest", g.Output(), "Netdevice 0 (fe:fd:0a:00:00:0", "daemon backend (uml_switch version 3) - unix:"+s.dir+"/lab.ctl")
	}
	s.typeIn(a, "net-a-guest")
	out := s.typeIn(b, "net-b-guest")
	want(t, "net-b-guest", out, "3 packets transmitted, 3 packets received, 0% packet loss")
	want(t, "net-host-ping", s.run("net-host-ping"), "2 packets transmitted, 2 packets received")
	for _, g := range []*harness.Guest{a, b} {
		if code, _ := s.typeEnd(g, "boot-poweroff"); code != 0 {
			t.Errorf("linux.uml exit %d after poweroff", code)
		}
	}
	want(t, "net-switch", sw.Output(), " Addr: fe:fd:0a:00:00:01 New port ", " Addr: fe:fd:0a:00:00:02 New port ")
	// Ctrl-C on the switch's terminal.
	syscall.Kill(-sw.Cmd.Process.Pid, syscall.SIGINT)
	if _, err := sw.Wait(10 * time.Second); err != nil {
		t.Errorf("switch after SIGINT: %v", err)
	}
	if _, err := os.Stat(s.dir + "/lab.ctl"); !os.IsNotExist(err) {
		t.Errorf("control socket left after Ctrl-C: %v", err)
	}
	s.run("net-cleanup")
	if err := exec.Command("ip", "netns", "pids", ns).Run(); err == nil {
		t.Errorf("namespace %s still exists after net-cleanup", ns)
	}
}

// TestIntegrationGuideRouterLab: chapter 4, two switches and a router
// machine (our linux; the others linux.uml) in a network namespace the
// test creates.
func TestIntegrationGuideRouterLab(t *testing.T) {
	requireLinux(t)
	harness.RealUML(t)
	testutil.Peer(t, "busybox", "busybox-static")
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	s := newSession(t)
	s.netLab("umlguider")
	var sws []*harness.Guest
	for _, n := range []string{"router-sw1", "router-sw2"} {
		sw := s.start(n)
		if err := sw.WaitOutput("attached to unix socket", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		sws = append(sws, sw)
	}
	r := s.start("router-boot")
	c1 := s.start("router-c1-boot")
	c2 := s.start("router-c2-boot")
	for _, g := range []*harness.Guest{r, c1, c2} {
		s.waitPrompt(g, 1)
	}
	s.typeIn(r, "router-guest")
	s.typeIn(c1, "router-c1-guest")
	out := s.typeIn(c2, "router-c2-guest")
	want(t, "router-c2-guest", out, "64 bytes from 10.0.1.1: seq=", " ttl=63 ",
		"3 packets transmitted, 3 packets received, 0% packet loss")
	for i, g := range []*harness.Guest{r, c1, c2} {
		if code, out := s.typeEnd(g, "boot-poweroff"); code != 0 {
			t.Errorf("%s exit %d after poweroff; its console after the command:\n%s", []string{"the router (our linux)", "c1 (linux.uml)", "c2 (linux.uml)"}[i], code, out)
		}
	}
	for _, sw := range sws {
		syscall.Kill(-sw.Cmd.Process.Pid, syscall.SIGINT)
		if _, err := sw.Wait(10 * time.Second); err != nil {
			t.Errorf("switch after SIGINT: %v", err)
		}
	}
	s.run("router-cleanup")
}

// TestIntegrationGuideTuntap: chapter 4, eth0=tuntap,,,HOST with our
// uml_net (first on PATH) in a namespace the test creates.
func TestIntegrationGuideTuntap(t *testing.T) {
	harness.RealUML(t)
	testutil.RequireTUN(t)
	testutil.Peer(t, "busybox", "busybox-static")
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	s := newSession(t)
	ns := s.netLab("umlguidet")
	g := s.start("tuntap-boot")
	s.waitPrompt(g, 1)
	out := s.typeIn(g, "tuntap-guest")
	want(t, "tuntap-guest", out, "* ifconfig tap0 10.0.3.1 netmask 255.255.255.255 up",
		"* bash -c echo 1 > /proc/sys/net/ipv4/ip_forward", "* route add -host 10.0.3.2 dev tap0",
		"* bash -c echo 1 > /proc/sys/net/ipv4/conf/tap0/proxy_arp")
	want(t, "tuntap-guest", out, "3 packets transmitted, 3 packets received, 0% packet loss")
	if code, _ := s.typeEnd(g, "boot-poweroff"); code != 0 {
		t.Errorf("linux.uml exit %d after poweroff", code)
	}
	if err := exec.Command("ip", "-n", ns, "link", "show", "tap0").Run(); err == nil {
		t.Errorf("tap0 still exists after the machine halted")
	}
	s.run("router-cleanup")
}

// netLab makes the guide's root_fs and its network namespace "umllab"
// under a name of this test's (prefix + pid), removed at cleanup, and
// returns that name.
func (s *session) netLab(prefix string) string {
	s.t.Helper()
	ns := fmt.Sprintf("%s%d", prefix, os.Getpid())
	s.subst["umllab"] = ns
	s.t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	s.run("boot-mkrootfs")
	s.run("net-netns")
	return ns
}
