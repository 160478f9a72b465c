package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// meshInit is the /init of guest me (1..n, address 10.77.6.me) of a mesh
// test: it listens for each peer's data on port 5000+peer, pings every
// peer, sends its own 2 MiB of random data to each, and reports checksums:
// SENT-me SUM, and RECEIVED-me-from-peer SUM SIZE for what each peer sent.
func meshInit(me, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.6.%d netmask 255.255.255.0 up
dd if=/dev/urandom of=/tmp/data bs=1024 count=2048 2>/dev/null
echo SENT-%d $(md5sum < /tmp/data | cut -d' ' -f1)
`, me, me)
	for p := 1; p <= n; p++ {
		if p == me {
			continue
		}
		// busybox nc -l ends at its stdin's EOF, not the peer's: -e runs
		// a receiver that ends at the peer's.
		fmt.Fprintf(&b, "printf '#!/bin/sh\\nexec cat > /tmp/from%d\\n' > /tmp/recv%d; chmod +x /tmp/recv%d\n", p, p, p)
		fmt.Fprintf(&b, "(nc -l -p %d -e /tmp/recv%d; echo RECEIVED-%d-from-%d $(md5sum < /tmp/from%d | cut -d' ' -f1) $(wc -c < /tmp/from%d)) &\n",
			5000+p, p, me, p, p, p)
	}
	for p := 1; p <= n; p++ {
		if p == me {
			continue
		}
		fmt.Fprintf(&b, `i=0
until ping -c 1 -W 1 10.77.6.%d >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 90 ] && break; done
ping -c 2 -W 2 10.77.6.%d >/dev/null && echo PING-%d-to-%d-OK
`, p, p, me, p)
	}
	for p := 1; p <= n; p++ {
		if p == me {
			continue
		}
		fmt.Fprintf(&b, "i=0\nuntil nc 10.77.6.%d %d < /tmp/data; do i=$((i+1)); [ $i -gt 30 ] && break; sleep 1; done\n", p, 5000+me)
	}
	b.WriteString("echo MESH-SENT\nwait\necho MESH-DONE\nsleep 5\npoweroff -f\n")
	return b.String()
}

var meshSumRE = regexp.MustCompile(`(?m)^(SENT-(\d)|RECEIVED-(\d)-from-(\d)) ([0-9a-f]{32})(?: (\d+))?`)

// TestIntegrationLinuxSwitchMesh: two of our guests and a linux.uml guest
// on one switch; every pair pings and moves 2 MiB of TCP each way, checked
// by MD5. On our switch our two guests use the vnet extension (64 KiB
// segments cross whole; the switch segments them for linux.uml); on
// Debian's uml_switch our kernel segments them itself.
func TestIntegrationLinuxSwitchMesh(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	onEachSwitch(t, func(t *testing.T, sw, ns, ctl string, d *harness.Daemon) {
		const n = 3
		var guests [n]*harness.Guest
		for i := 1; i <= n; i++ {
			img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: meshInit(i, n)})
			spec := fmt.Sprintf("eth0=daemon,02:00:0a:4d:06:%02x,unix,%s", i, ctl)
			if i == n {
				guests[i-1] = harness.BootRealUMLIn(t, ns, img, spec)
			} else {
				guests[i-1] = bootLinuxIn(t, ns, img, spec)
			}
		}
		for i, g := range guests {
			if err := g.WaitOutput("MESH-DONE", 240*time.Second); err != nil {
				t.Fatalf("guest %d: %v\n%s", i+1, err, g.Output())
			}
		}
		sent := map[string]string{}
		type got struct{ sum, size string }
		recv := map[[2]string]got{}
		for _, g := range guests {
			for _, m := range meshSumRE.FindAllStringSubmatch(g.Output(), -1) {
				if m[2] != "" {
					sent[m[2]] = m[5]
				} else {
					recv[[2]string{m[3], m[4]}] = got{m[5], m[6]}
				}
			}
		}
		for i := 1; i <= n; i++ {
			for p := 1; p <= n; p++ {
				if p == i {
					continue
				}
				me, from := itoa(i), itoa(p)
				if !strings.Contains(guests[i-1].Output(), "PING-"+me+"-to-"+from+"-OK") {
					t.Errorf("guest %s could not ping guest %s", me, from)
				}
				r, ok := recv[[2]string{me, from}]
				switch {
				case !ok:
					t.Errorf("guest %s reported nothing from guest %s", me, from)
				case r.size != "2097152" || r.sum != sent[from] || sent[from] == "":
					t.Errorf("guest %s got %s bytes with MD5 %s from guest %s, which sent 2097152 with MD5 %q", me, r.size, r.sum, from, sent[from])
				}
			}
		}
		if sw == "ours" {
			// SIGUSR1 lists the ports: ours negotiated the extension and
			// handed the switch their guest's device, linux.uml did not.
			syscall.Kill(-d.Cmd.Process.Pid, syscall.SIGUSR1)
			if err := d.WaitOutput("Switch: ", 5*time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if c := strings.Count(d.Output(), ", vnet, device attached): rx"); c != 2 {
				t.Errorf("%d ports use the vnet extension, want our 2:\n%s", c, d.Output())
			}
		}
	})
}
