package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationLinuxPtyLimit uses up the host's pseudo-terminals (all
// but a few of what kernel.pty.max leaves outside its reserve) and boots a
// machine whose 64 console and serial lines each need one: linux must refuse it with
// one line naming the limit and the sysctl, before the guest starts, where
// it used to panic half-way ("ssl27: open .../ptmx: no space left on
// device"). The same machine with its unused lines set to none boots.
// The squeeze lasts only while the refused machine starts.
func TestIntegrationLinuxPtyLimit(t *testing.T) {
	requireLinuxHost(t)
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{Init: "echo LIMIT-GUEST-UP\npoweroff -f\n"})
	read := func(name string) int {
		b, err := os.ReadFile("/proc/sys/kernel/pty/" + name)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	// Hold ptys until only 20 are left for devpts instances other than the
	// host's, then boot. Other tests running at the same time (CI runs
	// packages in parallel) take and free ptys too: a machine that booted
	// because one of theirs exited meanwhile is tried again, a few times.
	var held []int
	release := func() {
		for _, fd := range held {
			unix.Close(fd)
		}
		held = nil
	}
	defer release()
	var out string
	for try := 0; try < 5; try++ {
		for read("nr") < read("max")-read("reserve")-20 {
			fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("open /dev/ptmx after %d: %v", len(held), err)
			}
			unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
			held = append(held, fd)
		}
		g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+dir, "con=null", "con0=fd:0,fd:1")
		code, err := g.Wait(bootTimeout)
		out = g.Output()
		if err == nil && code != 0 {
			break
		}
		t.Logf("try %d: exit %d, %v (ptys freed meanwhile?)", try, code, err)
	}
	release()
	for _, want := range []string{"not enough host pseudo-terminals: this machine needs ", "sysctl -w kernel.pty.max="} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"Kernel panic", "LIMIT-GUEST-UP", "no space left on device"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q:\n%s", bad, out)
		}
	}
	// With the lines it does not use set to none, it fits in far fewer.
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+dir, "con=none", "ssl=none", "con0=fd:0,fd:1")
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 || !strings.Contains(g.Output(), "LIMIT-GUEST-UP") {
		t.Errorf("con=none ssl=none: exit %d, %v\n%s", code, err, g.Output())
	}
}
