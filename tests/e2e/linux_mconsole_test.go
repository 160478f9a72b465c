package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationLinuxRealMconsole drives our linux with Debian's
// uml_mconsole: the boot line, version, reboot and halt.
func TestIntegrationLinuxRealMconsole(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: `echo "BOOTED-$(cat /proc/sys/kernel/hostname)"; hostname mcguest; echo READY; exec sleep 1000`})
	umlDir := t.TempDir()
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=mc1")
	sock := filepath.Join(umlDir, "mc1", "mconsole")
	if err := g.WaitOutput("mconsole (version 2) initialized on "+sock+"\r\n", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) (string, int) {
		c := exec.Command(mc, sock, cmd)
		c.Env = append(os.Environ(), "HOME="+umlDir)
		out, err := c.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	out, code := run("version")
	if code != 0 || !strings.HasPrefix(out, "OK Linux mcguest ") {
		t.Errorf("uml_mconsole version = %q, exit %d; want OK Linux mcguest ...", out, code)
	}
	out, code = run("nonsense")
	if code != 1 || out != "ERR Unknown command\n" {
		t.Errorf("uml_mconsole nonsense = %q, exit %d; want ERR Unknown command, 1", out, code)
	}
	if out, code = run("reboot"); code != 0 || out != "OK \n" {
		t.Errorf("reboot = %q, %d", out, code)
	}
	if err := harness.WaitCount(g, "READY", 2, bootTimeout); err != nil {
		t.Fatalf("no second boot after mconsole reboot: %v", err)
	}
	if out, code = run("halt"); code != 0 || out != "OK \n" {
		t.Errorf("halt = %q, %d", out, code)
	}
	status, err := g.Wait(bootTimeout)
	if err != nil || status != 0 {
		t.Errorf("exit after mconsole halt = %d, %v; want 0", status, err)
	}
	if _, err := os.Stat(filepath.Join(umlDir, "mc1")); !os.IsNotExist(err) {
		t.Errorf("umid dir left after halt")
	}
}

// TestIntegrationLinuxMconsoleCommands: stop/go freeze and resume a guest
// counter, proc reads the guest's /proc, config queries ubd and con, log
// reaches the console, cad restarts a shell-script init — all through
// Debian's uml_mconsole.
func TestIntegrationLinuxMconsoleCommands(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: `echo READY
i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done`})
	umlDir := t.TempDir()
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=mc2")
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(umlDir, "mc2", "mconsole")
	run := func(cmd string) string {
		out, _ := exec.Command(mc, sock, cmd).Output()
		return string(out)
	}
	counter := func() string {
		out := run("proc 1/root/tmp/counter") // the guest's init, in the guest's /proc
		return strings.TrimSpace(strings.TrimPrefix(out, "OK "))
	}
	if out := run("stop"); out != "OK stopped\n" {
		t.Errorf("stop = %q", out)
	}
	if out := run("stop"); out != "ERR Already stopped\n" {
		t.Errorf("second stop = %q", out)
	}
	// As root on cgroup v2 the guest is frozen by its cgroup, not signals.
	frozen := func() string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", g.Pid()))
		if err != nil {
			return err.Error()
		}
		_, dir, _ := strings.Cut(string(b), "0::")
		dir, _, _ = strings.Cut(dir, "\n")
		for _, mnt := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} { // v2 only, or hybrid
			if ev, err := os.ReadFile(filepath.Join(mnt, dir, "guest", "cgroup.events")); err == nil {
				return string(ev)
			}
		}
		return "no guest cgroup under " + dir
	}
	if ev := frozen(); !strings.Contains(ev, "frozen 1") {
		t.Errorf("guest cgroup not frozen after stop: %q", ev)
	}
	a := counter()
	time.Sleep(400 * time.Millisecond)
	if b := counter(); a == "" || strings.HasPrefix(a, "ERR") || a != b {
		t.Errorf("counter moved while stopped: %q -> %q", a, b)
	}
	if out := run("go"); out != "OK \n" {
		t.Errorf("go = %q", out)
	}
	if ev := frozen(); !strings.Contains(ev, "frozen 0") {
		t.Errorf("guest cgroup still frozen after go: %q", ev)
	}
	if out := run("go"); out != "ERR Not stopped\n" {
		t.Errorf("second go = %q", out)
	}
	time.Sleep(400 * time.Millisecond)
	if c := counter(); c == a {
		t.Errorf("counter did not resume after go: %q", c)
	}
	if out := run("proc nonexistent"); out != "ERR Failed to open file\n" {
		t.Errorf("proc nonexistent = %q", out)
	}
	if out := run("proc uptime"); !strings.HasPrefix(out, "OK \n") || len(out) < 8 {
		t.Errorf("proc uptime = %q", out)
	}
	for cmd, want := range map[string]string{
		"config ubd0": "OK " + img + "\n", "config ubdb": "OK \n", "config ubd99": "ERR ubd_get_config : device number out of range\n",
		"config con0": "OK fd:0,fd:1\n", "config foo": "ERR Bad configuration option\n", "config eth0": "ERR No get_config routine defined\n",
	} {
		if out := run(cmd); out != want {
			t.Errorf("%s = %q; want %q", cmd, out, want)
		}
	}
	run("log MCONSOLE-LOG-LINE\n")
	if err := g.WaitOutput("MCONSOLE-LOG-LINE", 5*time.Second); err != nil {
		t.Error(err)
	}
	if out := run("cad"); out != "OK \n" {
		t.Errorf("cad = %q", out)
	}
	if err := harness.WaitCount(g, "READY", 2, bootTimeout); err != nil {
		t.Errorf("cad with a shell-script init did not restart: %v", err)
	}
	run("halt")
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
		t.Errorf("halt: exit %d, %v", code, err)
	}
}
