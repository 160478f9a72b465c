package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// netPingInit configures eth0 with addr/24, pings peer until it answers
// (at most ~limit tries), reports, and stays up a while so the peer can
// finish its own pings.
func netPingInit(addr, peer string, stay int) string {
	return `ifconfig lo 127.0.0.1 up
ifconfig eth0 ` + addr + ` netmask 255.255.255.0 up
echo ETH0-UP $(cat /sys/class/net/eth0/address)
i=0
until ping -c 1 -W 1 ` + peer + ` >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 90 ] && break; done
ping -c 2 -W 2 ` + peer + ` && echo PING-OK-` + addr + `
sleep ` + itoa(stay) + `
poweroff -f
`
}

func itoa(n int) string {
	const d = "0123456789"
	if n < 10 {
		return d[n : n+1]
	}
	return itoa(n/10) + d[n%10:n%10+1]
}

// onEachSwitch runs f as a subtest on our uml_switch ("ours") and on
// Debian's ("debian"), each started in a fresh network namespace ns on
// the control socket ctl.
func onEachSwitch(t *testing.T, f func(t *testing.T, sw, ns, ctl string, d *harness.Daemon)) {
	for _, sw := range []string{"ours", "debian"} {
		t.Run(sw, func(t *testing.T) {
			bin := harness.Bin(t, "uml_switch")
			if sw == "debian" {
				bin = testutil.Peer(t, "uml_switch", "uml-utilities")
			}
			ns := testutil.NetNS(t)
			ctl := filepath.Join(t.TempDir(), "sw.ctl")
			f(t, sw, ns, ctl, harness.StartSwitch(t, bin, ns, ctl))
		})
	}
}

// bootLinuxIn boots our linux inside network namespace ns.
func bootLinuxIn(t *testing.T, ns, img string, extra ...string) *harness.Guest {
	t.Helper()
	argv := append([]string{"ip", "netns", "exec", ns, harness.Bin(t, "linux"), "ubd0=" + img, "init=/init",
		"uml_dir=" + t.TempDir()}, extra...)
	return harness.Start(t, nil, argv...)
}

var netdeviceRE = regexp.MustCompile(`Netdevice 0 \(([0-9a-f:]{17})\) : `)

// TestIntegrationLinuxNetDaemonWithRealUML: our linux (eth0=daemon) and a
// real linux.uml on a uml_switch (ours, then Debian's), inside the test's
// network namespace, ping each other.
func TestIntegrationLinuxNetDaemonWithRealUML(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	onEachSwitch(t, func(t *testing.T, _ string, ns, ctl string, _ *harness.Daemon) {
		ours := bootLinuxIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.1.1", "10.77.1.2", 30)}),
			"eth0=daemon,02:00:0a:4d:01:01,unix,"+ctl)
		real := harness.BootRealUMLIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.1.2", "10.77.1.1", 30)}),
			"eth0=daemon,,unix,"+ctl)
		waitOursReal(t, 90*time.Second, ours, "PING-OK-10.77.1.1", real, "PING-OK-10.77.1.2")
		out := ours.Output()
		for _, want := range []string{
			"Netdevice 0 (02:00:0a:4d:01:01) : \r\ndaemon backend (uml_switch version 3) - unix:" + ctl + "\r\n",
			"ETH0-UP 02:00:0a:4d:01:01",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("our boot log lacks %q", want)
			}
		}
		// The real kernel's line for the same kind of spec, for comparison.
		if !strings.Contains(real.Output(), "daemon backend (uml_switch version 3) - unix:"+ctl) {
			t.Errorf("real linux.uml log lacks its daemon backend line")
		}
	})
}

// TestIntegrationLinuxNetTuntap: our linux with eth0=tuntap,TAP on a tap
// created and addressed in the test's namespace pings the namespace.
func TestIntegrationLinuxNetTuntap(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	for _, argv := range [][]string{
		{"ip", "tuntap", "add", "dev", "umltap9", "mode", "tap"},
		{"ip", "addr", "add", "10.77.2.1/24", "dev", "umltap9"},
		{"ip", "link", "set", "umltap9", "up"},
	} {
		if out, err := testutil.InNetNS(ns, argv...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	g := bootLinuxIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.2.2", "10.77.2.1", 8)}),
		"eth0=tuntap,umltap9")
	if err := g.WaitOutput("PING-OK-10.77.2.2", 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	out := g.Output()
	m := netdeviceRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "Choosing a random ethernet address for device eth0\r\n") ||
		!strings.Contains(out, "Netdevice 0 ("+m[1]+") : \r\nTUN/TAP backend - \r\n") {
		t.Fatalf("boot lines missing:\n%s", out)
	}
	if !strings.Contains(out, "ETH0-UP "+m[1]) {
		t.Errorf("guest eth0 does not carry the announced MAC %s", m[1])
	}
	if b := m[1][1]; !strings.ContainsRune("2367abef", rune(b)) {
		t.Errorf("random MAC %s is not locally administered", m[1])
	}
	// And the other way: the namespace pings the guest.
	if out, err := testutil.InNetNS(ns, "/bin/busybox", "ping", "-c", "1", "-W", "2", "10.77.2.2").CombinedOutput(); err != nil {
		t.Errorf("ping from the namespace to the guest: %v\n%s", err, out)
	}
}

// TestIntegrationLinuxNetMcastWithRealUML: our linux and a real linux.uml
// on the same eth0=mcast group inside the test's network namespace (lo
// multicast with a 224.0.0.0/4 route, as the real kernel needs) ping each
// other.
func TestIntegrationLinuxNetMcastWithRealUML(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
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
	spec := "eth0=mcast,,239.192.168.77,1177,1"
	ours := bootLinuxIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.3.1", "10.77.3.2", 30)}), spec)
	real := harness.BootRealUMLIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.3.2", "10.77.3.1", 30)}), spec)
	waitOursReal(t, 90*time.Second, ours, "PING-OK-10.77.3.1", real, "PING-OK-10.77.3.2")
	for _, want := range []string{"Configured mcast device: 239.192.168.77:1177-1\r\n",
		"mcast backend multicast address: 239.192.168.77:1177, TTL:1\r\n"} {
		if !strings.Contains(ours.Output(), want) {
			t.Errorf("our boot log lacks %q", want)
		}
		if !strings.Contains(real.Output(), strings.TrimSuffix(want, "\r\n")) {
			t.Errorf("real linux.uml log lacks %q (spec drift?)", want)
		}
	}
}

// TestIntegrationLinuxNetAfterReboot: the host side of an eth device lives
// in P, so after a guest reboot the new kernel stage gets eth0 again and
// the guest still reaches the namespace through the same host tap.
func TestIntegrationLinuxNetAfterReboot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	for _, argv := range [][]string{
		{"ip", "tuntap", "add", "dev", "umltap8", "mode", "tap"},
		{"ip", "addr", "add", "10.77.4.1/24", "dev", "umltap8"},
		{"ip", "link", "set", "umltap8", "up"},
	} {
		if out, err := testutil.InNetNS(ns, argv...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	init := `if [ ! -e /rebooted ]; then
  ifconfig eth0 10.77.4.2 netmask 255.255.255.0 up
  ping -c 1 -W 5 10.77.4.1 >/dev/null && echo FIRST-BOOT-PING-OK
  touch /rebooted; sync; reboot -f
fi
` + netPingInit("10.77.4.2", "10.77.4.1", 0)
	g := bootLinuxIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: init}), "eth0=tuntap,umltap8,fe:fd:0a:4d:04:02")
	if err := g.WaitOutput("PING-OK-10.77.4.2", 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	out := g.Output()
	if !strings.Contains(out, "FIRST-BOOT-PING-OK") || !strings.Contains(out, "reboot: Restarting system") ||
		!strings.Contains(out, "ETH0-UP fe:fd:0a:4d:04:02") {
		t.Fatalf("expected a ping before and after the reboot:\n%s", out)
	}
	// Run as root: each boot joins eth0 to the tap in the kernel anew
	// (where the kernel has tcx), the second into the new K's namespace.
	if n := strings.Count(out, "eth0: kernel data path to host tap umltap8"); n != 0 && n != 2 {
		t.Errorf("the kernel data path was built %d times over two boots:\n%s", n, out)
	}
	if code, err := g.Wait(20 * time.Second); err != nil || code != 0 {
		t.Errorf("exit %d, %v after poweroff -f", code, err)
	}
}

// TestIntegrationLinuxNetTuntapUnprivileged: an ordinary user's linux
// attaches to a host tap the user owns (ip tuntap add ... user U) and the
// guest pings the namespace: K creates eth0 in its own user namespace.
func TestIntegrationLinuxNetTuntapUnprivileged(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	testutil.RequireTUNAs(t, u.UID, u.GID)
	ns := testutil.NetNS(t)
	for _, argv := range [][]string{
		{"ip", "tuntap", "add", "dev", "umltap7", "mode", "tap", "user", u.Name},
		{"ip", "addr", "add", "10.77.5.1/24", "dev", "umltap7"},
		{"ip", "link", "set", "umltap7", "up"},
	} {
		if out, err := testutil.InNetNS(ns, argv...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	g := startLinuxAsIn(t, u, ns, netPingInit("10.77.5.2", "10.77.5.1", 0), "eth0=tuntap,umltap7")
	if err := g.WaitOutput("PING-OK-10.77.5.2", 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	// A user's linux never builds the kernel data path (it needs host
	// root): K relays the device.
	if strings.Contains(g.Output(), "kernel data path") {
		t.Errorf("an ordinary user's linux mentions the kernel data path:\n%s", g.Output())
	}
}

// waitOursReal waits (at most d each) until ours has printed oursWant and
// real realWant, and fails with both consoles otherwise.
func waitOursReal(t *testing.T, d time.Duration, ours *harness.Guest, oursWant string, real *harness.Guest, realWant string) {
	t.Helper()
	for _, g := range []struct {
		g    *harness.Guest
		want string
	}{{ours, oursWant}, {real, realWant}} {
		if err := g.g.WaitOutput(g.want, d); err != nil {
			t.Fatalf("%v\nours:\n%s\nreal:\n%s", err, ours.Output(), real.Output())
		}
	}
}

// startLinuxAsIn boots our linux as the ordinary user u inside network
// namespace ns, on a busybox image running init, with extra arguments.
// The binary is copied into the user's directory first: the user may not
// be able to enter the harness's build directory.
func startLinuxAsIn(t *testing.T, u *harness.TestUser, ns, init string, extra ...string) *harness.Guest {
	t.Helper()
	home := u.Dir(t)
	img := harness.BusyboxImage(t, home, harness.Image{Init: init})
	u.Chown(t, img)
	bin := filepath.Join(home, "linux")
	if out, err := exec.Command("cp", harness.Bin(t, "linux"), bin).CombinedOutput(); err != nil {
		t.Fatalf("copy linux: %v: %s", err, out)
	}
	argv := append([]string{"ip", "netns", "exec", ns, "setpriv",
		"--reuid=" + itoa(int(u.UID)), "--regid=" + itoa(int(u.GID)), "--clear-groups",
		bin, "ubd0=" + img, "init=/init", "uml_dir=" + filepath.Join(home, "uml")}, extra...)
	return harness.Start(t, []string{"HOME=" + u.Home}, argv...)
}

// TestIntegrationLinuxNetUcastWithRealUML: our linux and a real linux.uml
// as the two ends of an eth0=ucast link over the test namespace's
// loopback ping each other.
func TestIntegrationLinuxNetUcastWithRealUML(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	ns := testutil.NetNS(t)
	if out, err := testutil.InNetNS(ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	ours := bootLinuxIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.6.1", "10.77.6.2", 30)}),
		"eth0=ucast,,127.0.0.1,1201,1202")
	real := harness.BootRealUMLIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.6.2", "10.77.6.1", 30)}),
		"eth0=ucast,,127.0.0.1,1202,1201")
	waitOursReal(t, 90*time.Second, ours, "PING-OK-10.77.6.1", real, "PING-OK-10.77.6.2")
	for _, want := range []string{"Configured ucast device: :1201 -> 127.0.0.1:1202\r\n",
		"ucast backend address: 127.0.0.1:1202 listen port: 1201\r\n"} {
		if !strings.Contains(ours.Output(), want) {
			t.Errorf("our boot log lacks %q", want)
		}
	}
	if !strings.Contains(real.Output(), "ucast backend address: 127.0.0.1:1201 listen port: 1202") {
		t.Errorf("real linux.uml log lacks its ucast backend line (spec drift?)")
	}
}

// TestIntegrationLinuxNetTuntapUMLNet: eth0=tuntap,,,GATE runs the setuid
// uml_net helper (Debian's, then ours first in $PATH) as `uml_net 4 tuntap
// up GATE` in the test's namespace, gets the tap fd back, and runs the add
// hook when the guest sets its address; the guest then pings the gateway.
func TestIntegrationLinuxNetTuntapUMLNet(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTUN(t)
	debian := testutil.Peer(t, "uml_net", "uml-utilities")
	for i, helper := range []string{debian, harness.Bin(t, "uml_net")} {
		t.Run([]string{"debian", "ours"}[i], func(t *testing.T) {
			ns := testutil.NetNS(t)
			img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.7.2", "10.77.7.1", 0)})
			env := []string{"PATH=" + filepath.Dir(helper) + ":/usr/bin:/bin:/usr/sbin:/sbin"}
			argv := []string{"ip", "netns", "exec", ns, harness.Bin(t, "linux"), "ubd0=" + img, "init=/init",
				"uml_dir=" + t.TempDir(), "eth0=tuntap,,fe:fd:0a:4d:07:02,10.77.7.1"}
			g := harness.Start(t, env, argv...)
			if err := g.WaitOutput("PING-OK-10.77.7.2", 60*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, g.Output())
			}
			out := g.Output()
			for _, re := range []string{
				`Netdevice 0 \(fe:fd:0a:4d:07:02\) : \r\nTUN/TAP backend - IP = 10\.77\.7\.1\r\n`,
				`\* ifconfig tap\d+ 10\.77\.7\.1 netmask 255\.255\.255\.255 up\r\n`,
				`\* route add -host 10\.77\.7\.2 dev tap\d+\r\n`,
			} {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("boot log does not match %q", re)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// TestIntegrationLinuxNetVdeWithRealUML: our linux and a real linux.uml,
// both with eth0=vde on one vde_switch (each runs vde_plug), ping each
// other.
func TestIntegrationLinuxNetVdeWithRealUML(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	vde := testutil.Peer(t, "vde_switch", "vde2")
	testutil.Peer(t, "vde_plug", "vde2")
	ns := testutil.NetNS(t)
	dir := filepath.Join(t.TempDir(), "vde")
	sw := exec.Command("ip", "netns", "exec", ns, vde, "-s", dir)
	stdin, err := sw.StdinPipe() // vde_switch exits at stdin EOF
	if err != nil {
		t.Fatal(err)
	}
	sw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-sw.Process.Pid, syscall.SIGKILL); stdin.Close(); sw.Wait() })
	if err := testutil.WaitFor(10*time.Second, func() bool {
		st, err := os.Stat(filepath.Join(dir, "ctl"))
		return err == nil && st.Mode()&os.ModeSocket != 0
	}); err != nil {
		t.Fatalf("vde_switch control socket: %v", err)
	}
	ours := bootLinuxIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.8.1", "10.77.8.2", 30)}),
		"eth0=vde,"+dir)
	real := harness.BootRealUMLIn(t, ns, harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.8.2", "10.77.8.1", 30)}),
		"eth0=vde,"+dir)
	waitOursReal(t, 90*time.Second, ours, "PING-OK-10.77.8.1", real, "PING-OK-10.77.8.2")
	for _, want := range []string{"Configured vde device: " + dir + "\r\n", "vde backend - " + dir + ", \r\n",
		"vde backend - connection opened\r\n"} {
		if !strings.Contains(ours.Output(), want) {
			t.Errorf("our boot log lacks %q", want)
		}
		if !strings.Contains(real.Output(), strings.TrimSuffix(want, "\r\n")) {
			t.Errorf("real linux.uml log lacks %q (spec drift?)", want)
		}
	}
}
