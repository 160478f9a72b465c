package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// hotplugErrors are mconsole requests whose replies must equal Debian's
// linux.uml's; %s is a directory with d1.img in it. Not compared: "config
// ubd3=" (an empty file name), which linux.uml answers OK and then logs that
// it cannot open the directory; ours refuses it.
var hotplugErrors = []string{
	"config ubd0=%s/d1.img", "config ubd2=%s/missing.img", "config ubd2x=%s/d1.img", "config ubd99=%s/d1.img",
	"config ubdq=x", "config ubd2d=%s/a.cow,%s/d1.img", "config ubd3",
	"remove ubd5", "remove ubd99", "remove ubdz", "remove ubdx1", "remove foo", "remove ubd0",
	"remove con5", "config con5", "remove con99", "remove ssl3", "config ssl3",
}

func hotplugRequest(format, dir string) string {
	n := strings.Count(format, "%s")
	args := make([]any, n)
	for i := range args {
		args[i] = dir
	}
	return fmt.Sprintf(format, args...)
}

// TestIntegrationLinuxMconsoleHotplug: "config ubdN=FILE" adds a disk to a
// running guest (/dev/ubdX and /dev/ubd/N appear and read the file through
// the driver), "remove ubdN" takes it away again, refusing while the guest
// has it open; the error replies are Debian linux.uml's, byte for byte.
func TestIntegrationLinuxMconsoleHotplug(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	run := debianMconsole(t)
	dir := t.TempDir()
	mk := func(name, text string) string {
		p := filepath.Join(dir, name)
		b := make([]byte, 1<<20)
		copy(b, text)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d1 := mk("d1.img", "HOTPLUG-DISK-ONE")
	mk("d2.img", "HOTPLUG-DISK-TWO")

	var reqs []string
	for _, f := range hotplugErrors {
		reqs = append(reqs, hotplugRequest(f, dir))
	}
	real := realReplies(t, "hp-real", reqs)

	g, sock := bootForMconsole(t, "echo READY; exec sh", "hp", "con0=fd:0,fd:1", "con=null", "ssl=null")
	sameReplies(t, run, sock, reqs, real)
	guest := (&guestShell{t: t, g: g}).run

	if out := run(sock, "config ubd1="+d1); out != "OK \n" {
		t.Fatalf("config ubd1= = %q", out)
	}
	if out := run(sock, "config ubd1"); out != "OK "+d1+"\n" {
		t.Errorf("config ubd1 = %q", out)
	}
	guest("head -c 16 /dev/ubdb; echo ' <-ubdb'", "HOTPLUG-DISK-ONE <-ubdb")
	guest("head -c 16 /dev/ubd/1; echo ' <-ubd/1'", "HOTPLUG-DISK-ONE <-ubd/1")
	guest("printf CHANGED | dd of=/dev/ubdb conv=notrunc 2>/dev/null", "")
	if out := run(sock, "config ubd1="+d1); out != "ERR Device is already configured\n" {
		t.Errorf("second config ubd1= = %q", out)
	}
	if out := run(sock, "remove ubd1"); out != "OK \n" {
		t.Errorf("remove ubd1 = %q", out)
	}
	if b, _ := os.ReadFile(d1); !bytes.HasPrefix(b, []byte("CHANGED-DISK-ONE")) {
		t.Errorf("guest write through the hot-plugged disk not in the file: %q", b[:16])
	}
	guest("ls /dev/ubdb 2>&1", "No such file")

	if out := run(sock, "config ubdc="+filepath.Join(dir, "d2.img")); out != "OK \n" {
		t.Fatalf("config ubdc= = %q", out)
	}
	guest("exec 3</dev/ubdc; head -c 16 /dev/ubdc; echo ' <-ubdc'", "HOTPLUG-DISK-TWO <-ubdc")
	if out := run(sock, "remove ubd2"); out != "ERR Device is currently open\n" {
		t.Errorf("remove of an open disk = %q", out)
	}
	guest("exec 3<&-", "")
	if err := testutil.WaitFor(5*time.Second, func() bool { return run(sock, "remove ubd2") == "OK \n" }); err != nil {
		t.Errorf("remove ubd2 after close: %v", err)
	}
	if out := run(sock, "config ubd2"); out != "OK \n" {
		t.Errorf("config ubd2 after remove = %q", out)
	}
	run(sock, "halt")
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
		t.Errorf("halt: %d, %v", code, err)
	}
}

// ethHotplugErrors are eth config/remove requests whose replies must equal
// Debian linux.uml's.
var ethHotplugErrors = []string{
	"config ethx=daemon", "config eth1x=daemon", "config eth1", "config eth1=nosuchtransport",
	"remove eth7", "remove ethz", "remove eth",
}

// TestIntegrationLinuxMconsoleEthHotplug: "config eth0=daemon,..." gives a
// running guest of ours an eth0 on a switch, and it pings Debian's
// linux.uml on the same switch; "remove eth0" is refused while the
// interface is up and takes it away once it is down.
func TestIntegrationLinuxMconsoleEthHotplug(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	run := debianMconsole(t)
	ctl := filepath.Join(t.TempDir(), "sw.ctl")
	harness.StartSwitch(t, harness.Bin(t, "uml_switch"), "", ctl)

	real := map[string]string{}
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "ifconfig eth0 10.0.0.6 netmask 255.255.255.0 up; echo READY; exec sleep 1000"})
	peer := harness.BootRealUML(t, img, "umid=eh-real", "eth0=daemon,fe:fd:0a:00:00:06,unix,"+ctl)
	if err := peer.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	rsock := realMconsoleSocket(t, peer, "eh-real")
	for _, req := range ethHotplugErrors {
		real[req] = run(rsock, req)
	}

	g, sock := bootForMconsole(t, "echo READY; exec sh", "eh")
	sameReplies(t, run, sock, ethHotplugErrors, real)
	guest := (&guestShell{t: t, g: g}).run
	if out := run(sock, "config eth0=daemon,fe:fd:0a:00:00:05,unix,"+ctl); out != "OK \n" {
		t.Fatalf("config eth0= = %q\n%s", out, g.Output())
	}
	if out := run(sock, "config eth0=daemon,,unix,"+ctl); out != "ERR Device already configured\n" {
		t.Errorf("second config eth0= = %q", out)
	}
	guest("cat /sys/class/net/eth0/address", "fe:fd:0a:00:00:05")
	guest("ifconfig eth0 10.0.0.5 netmask 255.255.255.0 up && ping -c 2 -W 5 10.0.0.6 >/dev/null && echo PING-OK", "PING-OK")
	if out := run(sock, "remove eth0"); out != "ERR Device is currently open\n" {
		t.Errorf("remove of an up eth0 = %q", out)
	}
	guest("ifconfig eth0 down", "")
	if out := run(sock, "remove eth0"); out != "OK \n" {
		t.Errorf("remove eth0 = %q", out)
	}
	guest("ls /sys/class/net; echo ' <-ifaces'", "")
	if out := g.Output(); strings.Contains(out[strings.LastIndex(out, "ls /sys/class/net"):], "eth0") {
		t.Errorf("eth0 still in the guest after remove")
	}
	run(sock, "halt")
	run(rsock, "halt")
	g.Wait(bootTimeout)
	peer.Wait(bootTimeout)
}
