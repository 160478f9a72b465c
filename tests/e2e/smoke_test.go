// Package e2e holds black-box end-to-end tests: real binaries, real Debian
// peers, booted guests.
package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/tests/harness"
)

var binaries = []string{"linux", "uml_switch", "uml_net", "tunctl", "uml_moo", "uml_mkcow",
	"uml_mconsole", "port-helper", "uml_watchdog", "uml_mkrootfs"}

func TestEveryBinaryAnswersHelpAndVersion(t *testing.T) {
	for _, name := range binaries {
		t.Run(name, func(t *testing.T) {
			bin := harness.Bin(t, name)
			out, err := exec.Command(bin, "--version").Output()
			if err != nil {
				t.Fatalf("%s --version: %v", name, err)
			}
			if !strings.HasPrefix(string(out), name+" (umlkit) ") {
				t.Errorf("%s --version = %q; want %q prefix", name, out, name+" (umlkit) ")
			}
			out, err = exec.Command(bin, "--help").Output()
			if err != nil {
				t.Fatalf("%s --help: %v", name, err)
			}
			if !strings.Contains(string(out), name) {
				t.Errorf("%s --help does not name the binary:\n%s", name, out)
			}
		})
	}
}

// TestIntegrationRealUMLSmoke proves the harness: the real UML kernel boots a
// busybox image made with mke2fs -d, runs a script and we read its marker.
func TestIntegrationRealUMLSmoke(t *testing.T) {
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{
		Init: "echo SMOKE-MARKER-$(( 6 * 7 ))\nuname -r\npoweroff -f\n",
	})
	g := harness.BootRealUML(t, img, "umid=smoke")
	if err := g.WaitOutput("SMOKE-MARKER-42", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	code, err := g.Wait(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("linux.uml exit status %d after poweroff -f; want 0", code)
	}
	if !strings.Contains(g.Output(), "6.1.") {
		t.Errorf("guest uname -r did not report a 6.1 kernel")
	}
}
