package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
