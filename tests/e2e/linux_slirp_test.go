package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationLinuxNetSlirp: the slirp transport speaks SLIP over the
// stdio of the command the device names. Two guests of ours get commands
// that join their stdio over a loopback TCP connection (busybox nc, in a
// network namespace of the test's), which makes a point-to-point IPv4 link
// between them, and ping each other across it. The boot lines are compared
// with Debian linux.uml's for the same device.
//
// Debian's own slirp (1.0.17) cannot be the peer: it exits at once unless
// its stdin is a terminal, and even on the terminal linux (ours) gives it,
// it exits after its banner; with linux.uml it does not start at all.
func TestIntegrationLinuxNetSlirp(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	busybox := testutil.Peer(t, "busybox", "busybox-static")
	ns := testutil.NetNS(t)
	linux := harness.Bin(t, "linux")
	boot := func(umid, eth, init string) *harness.Guest {
		img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: init})
		return harness.Start(t, nil, "ip", "netns", "exec", ns, linux, "ubd0="+img, "init=/init",
			"uml_dir="+t.TempDir(), "umid="+umid, eth)
	}
	a := boot("slip-a", "eth0=slirp,,"+busybox+",nc,-l,-p,7790",
		"ifconfig eth0 10.1.0.1 pointopoint 10.1.0.2 up; echo A-READY; exec sleep 1000")
	if err := a.WaitOutput("A-READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	b := boot("slip-b", "eth0=slirp,,"+busybox+",nc,127.0.0.1,7790",
		"ifconfig eth0 10.1.0.2 pointopoint 10.1.0.1 up; ping -c 3 -W 5 10.1.0.1 && echo PING-OK; exec sleep 1000")
	if err := b.WaitOutput("PING-OK", bootTimeout); err != nil {
		t.Errorf("no ping over the SLIP link: %v\n%s", err, b.Output())
	}
	want := "Netdevice 0 (" // then the MAC, then the command's lines
	for _, line := range []string{"SLIRP backend - command line:\r\n '" + busybox + "'\r\n 'nc'\r\n '127.0.0.1'\r\n '7790'\r\n", want} {
		if !strings.Contains(b.Output(), line) {
			t.Errorf("boot log lacks %q", line)
		}
	}

	// linux.uml prints the same lines for the same device (its helper
	// fails to connect here, which does not matter for the log).
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo READY; exec sleep 1000"})
	r := harness.BootRealUMLIn(t, ns, img, "umid=slip-real", "eth0=slirp,,"+busybox+",nc,127.0.0.1,7791")
	if err := r.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	realLines := "SLIRP backend - command line:\r\n '" + busybox + "'\r\n 'nc'\r\n '127.0.0.1'\r\n '7791'\r\n"
	if !strings.Contains(strings.ReplaceAll(r.Output(), "\r\n", "\n"), strings.ReplaceAll(realLines, "\r\n", "\n")) {
		t.Errorf("linux.uml's slirp lines differ from ours; its output:\n%s", r.Output())
	}
	for _, g := range []*harness.Guest{a, b, r} {
		g.Cmd.Process.Kill()
		g.Wait(10 * time.Second)
	}
}
