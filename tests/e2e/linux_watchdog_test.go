package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// watchdogInit opens /dev/watchdog, pings three times, then keeps it open
// in silence.
const watchdogInit = `exec 3>/dev/watchdog
for i in 1 2 3; do echo ping >&3; sleep 1; done
echo PINGED
exec sleep 1000`

// TestIntegrationLinuxWatchdog: a guest of ours that opens /dev/watchdog
// gets uml_watchdog started as UML starts it; when the guest stops
// pinging, the helper sends the HANG notification after its 60 s — with
// Debian's uml_watchdog and with ours, side by side.
func TestIntegrationLinuxWatchdog(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	debian := testutil.Peer(t, "uml_watchdog", "uml-utilities")
	if debian != "/usr/bin/uml_watchdog" {
		t.Fatalf("Debian's uml_watchdog is at %s, not %s where UML runs it from", debian, "/usr/bin/uml_watchdog")
	}
	var wg sync.WaitGroup
	for _, helper := range []string{"debian", "ours"} {
		helper := helper
		dir := t.TempDir()
		sock := filepath.Join(dir, "notify")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var env []string
		if helper == "ours" {
			env = []string{"UML_WATCHDOG=" + harness.Bin(t, "uml_watchdog")}
		}
		img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: watchdogInit})
		g := harness.Start(t, env, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+dir, "umid=wd-"+helper,
			"mconsole=notify:"+sock)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.WaitOutput("PINGED", bootTimeout); err != nil {
				t.Errorf("%s: %v", helper, err)
				return
			}
			pinged := time.Now()
			buf := make([]byte, 1024)
			c.SetReadDeadline(time.Now().Add(90 * time.Second))
			for {
				n, err := c.Read(buf)
				if err != nil {
					t.Errorf("%s helper: no HANG notification: %v\n%s", helper, err, g.Output())
					return
				}
				var msg mconsole.Notify
				if msg.UnmarshalBinary(buf[:n]) != nil || msg.Type != mconsole.NotifyHang {
					continue // the SOCKET notification at boot
				}
				if d := time.Since(pinged); d < 55*time.Second {
					t.Errorf("%s helper: HANG %v after the last ping, want about 60 s", helper, d)
				}
				if strings.Contains(g.Output(), "harddog") {
					t.Errorf("%s helper: harddog error on the console:\n%s", helper, g.Output())
				}
				return
			}
		}()
	}
	wg.Wait()
}
