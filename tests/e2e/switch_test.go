package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// Guest scripts for the switch tests. Guest addresses live only on the
// switch (or in the test's network namespace): 10.77.0.0/24.
const switchServerInit = `mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.1 netmask 255.255.255.0 up
echo SERVER-UP
nc -l -p 5001 > /tmp/got
echo RECEIVED $(md5sum < /tmp/got | cut -d' ' -f1) $(wc -c < /tmp/got)
poweroff -f
`

const switchClientInit = `mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.2 netmask 255.255.255.0 up
i=0
until ping -c 1 -W 1 10.77.0.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done
ping -c 3 10.77.0.1 && echo PING-OK
dd if=/dev/urandom of=/tmp/data bs=1024 count=4096 2>/dev/null
echo SENT $(md5sum < /tmp/data | cut -d' ' -f1) $(wc -c < /tmp/data)
i=0
until nc 10.77.0.1 5001 < /tmp/data; do i=$((i+1)); [ $i -gt 30 ] && break; sleep 1; done
echo NC-DONE
sleep 2
poweroff -f
`

func switchGuestImage(t *testing.T, init string) string {
	t.Helper()
	return harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: init})
}

var switchSumRE = regexp.MustCompile(`(SENT|RECEIVED) ([0-9a-f]{32}) (\d+)`)

func TestIntegrationSwitchTwoGuests(t *testing.T) {
	// "howto" is the HOWTO's -unix CTL DATA form: one shared, named data
	// socket like the real switch (no per-port sockets).
	for _, mode := range []string{"switch", "hub", "howto"} {
		t.Run(mode, func(t *testing.T) {
			harness.RealUML(t)
			bin := harness.Bin(t, "uml_switch")
			ctl := filepath.Join(t.TempDir(), "sw.ctl")
			var args []string
			switch mode {
			case "hub":
				args = append(args, "-hub")
			case "howto":
				args = append(args, filepath.Join(filepath.Dir(ctl), "sw.data"))
			}
			t0 := time.Now()
			sw := harness.StartSwitch(t, bin, "", ctl, args...)
			srv := harness.BootRealUML(t, switchGuestImage(t, switchServerInit), "umid=sw-srv",
				"eth0=daemon,fe:fd:0a:4d:00:01,unix,"+ctl)
			cli := harness.BootRealUML(t, switchGuestImage(t, switchClientInit), "umid=sw-cli",
				"eth0=daemon,fe:fd:0a:4d:00:02,unix,"+ctl)
			for _, g := range []*harness.Guest{srv, cli} {
				if err := g.WaitOutput("daemon backend (uml_switch version 3) - unix:"+ctl, 60*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if err := cli.WaitOutput("PING-OK", 90*time.Second); err != nil {
				t.Fatalf("client: %v\n%s", err, cli.Output())
			}
			t.Logf("ping ok after %v", time.Since(t0))
			if err := srv.WaitOutput("RECEIVED", 90*time.Second); err != nil {
				t.Fatalf("server: %v\nclient:\n%s", err, cli.Output())
			}
			t.Logf("4 MiB received after %v", time.Since(t0))
			sent := switchSumRE.FindStringSubmatch(cli.Output())
			got := switchSumRE.FindStringSubmatch(srv.Output())
			if sent == nil || got == nil || sent[2] != got[2] || got[3] != "4194304" {
				t.Fatalf("TCP transfer: sent %q, received %q", sent, got)
			}
			out := sw.Output()
			if mode == "hub" {
				if !strings.Contains(out, bin+" will be a hub instead of a switch\n") {
					t.Errorf("hub notice missing:\n%s", out)
				}
				if strings.Contains(out, "Addr:") && strings.Contains(out, "unknown Addr") {
					t.Errorf("hub logged unknown addresses:\n%s", out)
				}
			} else {
				for _, want := range []string{" Addr: fe:fd:0a:4d:00:01 New port ", " Addr: fe:fd:0a:4d:00:02 New port "} {
					if !strings.Contains(out, want) {
						t.Errorf("switch log lacks %q:\n%s", want, out)
					}
				}
			}
			if n := strings.Count(out, "New connection\n"); n != 2 {
				t.Errorf("%d 'New connection' lines; want 2:\n%s", n, out)
			}
			for _, g := range []*harness.Guest{srv, cli} {
				g.Wait(30 * time.Second)
			}
			if err := sw.WaitOutput("Disconnect\nDisconnect\n", 10*time.Second); err != nil {
				t.Errorf("switch did not see both guests leave: %v", err)
			}
			if err := sw.Stop(syscall.SIGINT, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(sw.Output(), "Caught signal 2, cleaning up and exiting\n") {
				t.Errorf("no SIGINT message:\n%s", sw.Output())
			}
			if _, err := os.Stat(ctl); !os.IsNotExist(err) {
				t.Errorf("control socket left after SIGINT: %v", err)
			}
			if ws, ok := sw.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
				t.Errorf("switch exit %v; want death by SIGINT like the real one", sw.Cmd.ProcessState)
			}
		})
	}
}

// TestIntegrationSwitchTapUplink: our switch inside a fresh network
// namespace with -tap on a tap device there; the guest pings the
// namespace's address through it.
func TestIntegrationSwitchTapUplink(t *testing.T) {
	harness.RealUML(t)
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	for _, args := range [][]string{
		{"-n", ns, "tuntap", "add", "dev", "umlsw0", "mode", "tap"},
		{"-n", ns, "addr", "add", "10.77.0.254/24", "dev", "umlsw0"},
		{"-n", ns, "link", "set", "umlsw0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	bin := harness.Bin(t, "uml_switch")
	ctl := filepath.Join(t.TempDir(), "sw.ctl")
	sw := harness.StartSwitch(t, bin, ns, ctl, "-tap", "umlsw0")
	if err := sw.WaitOutput(fmt.Sprintf("attached to unix socket '%s' tap device 'umlsw0'\n", ctl), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	g := harness.BootRealUMLIn(t, ns, switchGuestImage(t, `ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.1 netmask 255.255.255.0 up
i=0
until ping -c 1 -W 1 10.77.0.254 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 30 ] && break; done
ping -c 3 10.77.0.254 && echo TAP-PING-OK
echo GUEST-WAITING
sleep 30
poweroff -f
`), "umid=sw-tap", "eth0=daemon,fe:fd:0a:4d:00:01,unix,"+ctl)
	if err := g.WaitOutput("TAP-PING-OK", 90*time.Second); err != nil {
		t.Fatalf("%v\nswitch:\n%s", err, sw.Output())
	}
	// And the namespace reaches the guest.
	if out, err := testutil.InNetNS(ns, "/bin/busybox", "ping", "-c", "2", "-W", "2", "10.77.0.1").CombinedOutput(); err != nil {
		t.Errorf("ping from the namespace to the guest: %v\n%s", err, out)
	}
	if !strings.Contains(sw.Output(), " Addr: fe:fd:0a:4d:00:01 New port ") {
		t.Errorf("switch did not learn the guest:\n%s", sw.Output())
	}
}

// TestIntegrationSwitchMessagesMatchReal compares our usage and socket
// errors with Debian's uml_switch byte for byte.
func TestIntegrationSwitchMessagesMatchReal(t *testing.T) {
	real := testutil.Peer(t, "uml_switch", "uml-utilities")
	ours := harness.Bin(t, "uml_switch")
	run := func(bin string, args ...string) (string, string, int) {
		// Same argv[0] for both so messages that embed it compare equal.
		cmd := exec.Command(bin, args...)
		cmd.Args[0] = "uml_switch"
		cmd.Stdin = nil
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		done := make(chan struct{})
		cmd.Start()
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}
	for _, args := range [][]string{{"-bogus"}, {"-unix"}, {"-tap"}, {"-hub", "-x"}, {"-compat-v0", "-unix", "c"}} {
		ro, re, rc := run(real, args...)
		oo, oe, oc := run(ours, args...)
		if ro != oo || re != oe || rc != oc {
			t.Errorf("uml_switch %q:\n real: stdout %q stderr %q exit %d\n ours: stdout %q stderr %q exit %d", args, ro, re, rc, oo, oe, oc)
		}
	}
	// A live control socket is refused with the same words and status.
	ctl := filepath.Join(t.TempDir(), "live.ctl")
	harness.StartSwitch(t, real, "", ctl)
	_, re, rc := run(real, "-unix", ctl)
	_, oe, oc := run(ours, "-unix", ctl)
	if re != oe || rc != oc || rc != 1 {
		t.Errorf("live socket:\n real: %q exit %d\n ours: %q exit %d", re, rc, oe, oc)
	}
}

// TestIntegrationSwitchStdinTTY: with stdin a terminal, EOF (^D) makes both
// the real uml_switch and ours print the same line, remove the socket and
// exit 0.
func TestIntegrationSwitchStdinTTY(t *testing.T) {
	real := testutil.Peer(t, "uml_switch", "uml-utilities")
	ours := harness.Bin(t, "uml_switch")
	var outs []string
	for _, bin := range []string{real, ours} {
		ctl := filepath.Join(t.TempDir(), "tty.ctl")
		cmd := exec.Command(bin, "-unix", ctl)
		cmd.Args[0] = "uml_switch"
		ptmx, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		copied := make(chan struct{})
		go func() { io.Copy(&out, ptmx); close(copied) }()
		if err := testutil.WaitFor(5*time.Second, func() bool { _, err := os.Stat(ctl); return err == nil }); err != nil {
			cmd.Process.Kill()
			t.Fatalf("%s: no socket", bin)
		}
		time.Sleep(100 * time.Millisecond) // the real one binds before it polls stdin
		ptmx.Write([]byte{4})
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s after ^D: %v", bin, err)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s did not exit on ^D", bin)
		}
		ptmx.Close()
		<-copied
		if _, err := os.Stat(ctl); !os.IsNotExist(err) {
			t.Errorf("%s left %s behind", bin, ctl)
		}
		outs = append(outs, strings.ReplaceAll(out.String(), ctl, "CTL"))
	}
	t.Logf("tty session: %q", outs[0])
	if !strings.Contains(outs[0], "EOF on stdin, cleaning up and exiting") {
		t.Errorf("real session lacks the EOF line: %q", outs[0])
	}
	if outs[0] != outs[1] {
		t.Errorf("tty session differs:\n real: %q\n ours: %q", outs[0], outs[1])
	}
}

// TestIntegrationSwitchVdePlug: vde2's vde_plug (libvdeplug, the v3 request
// with a description and a named data socket it connect()s to our reply)
// attaches unchanged; a frame written into one plug comes out of the other.
func TestIntegrationSwitchVdePlug(t *testing.T) {
	plug := testutil.Peer(t, "vde_plug", "vde2")
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	sw := harness.StartSwitch(t, harness.Bin(t, "uml_switch"), "", ctl)
	start := func() (*exec.Cmd, io.WriteCloser, *testutil.SyncBuffer) {
		cmd := exec.Command(plug, "--descr", "e2e", dir)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &testutil.SyncBuffer{}
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
		return cmd, in, out
	}
	_, _, rxOut := start()
	if err := sw.WaitOutput("New connection\n", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rxCmd := rxOut
	_, txIn, _ := start()
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Count(sw.Output(), "New connection\n") == 2 }); err != nil {
		t.Fatalf("second plug did not attach:\n%s", sw.Output())
	}
	frame := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}, make([]byte, 46)...)
	for i := 14; i < len(frame); i++ {
		frame[i] = byte(i)
	}
	// vde_plug's stdio stream: 2-byte big-endian length, then the frame.
	txIn.Write(append([]byte{0, byte(len(frame))}, frame...))
	want := append([]byte{0, byte(len(frame))}, frame...)
	if err := testutil.WaitFor(5*time.Second, func() bool { return bytes.Contains(rxCmd.Bytes(), want) }); err != nil {
		t.Fatalf("frame did not come out of the other plug (got %x)\nswitch:\n%s", rxCmd.Bytes(), sw.Output())
	}
	if !strings.Contains(sw.Output(), " Addr: 02:00:00:00:00:01 New port ") {
		t.Errorf("switch did not learn the plug's MAC:\n%s", sw.Output())
	}
}

// TestIntegrationSwitchDaemonPidfile: -daemon returns once the socket is
// bound, -pidfile names the background process, SIGTERM removes both files.
func TestIntegrationSwitchDaemonPidfile(t *testing.T) {
	bin := harness.Bin(t, "uml_switch")
	dir := t.TempDir()
	ctl, pidf, logf := filepath.Join(dir, "d.ctl"), filepath.Join(dir, "d.pid"), filepath.Join(dir, "d.log")
	t.Cleanup(func() { // never leave the background switch behind
		var pid int
		if b, err := os.ReadFile(pidf); err == nil && func() bool { _, e := fmt.Sscanf(string(b), "%d", &pid); return e == nil }() && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	cmd := exec.Command(bin, "-unix", ctl, "-daemon", "-pidfile", pidf, "-logfile", logf)
	// The daemon keeps stdio (daemon(0,1)), so give it a file, not a pipe
	// that would stay open until it exits.
	outf, err := os.Create(filepath.Join(dir, "stdio"))
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	cmd.Stdout, cmd.Stderr = outf, outf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(outf.Name())
		t.Fatalf("uml_switch -daemon: %v\n%s", err, out)
	}
	if st, err := os.Stat(ctl); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("control socket not ready when -daemon returned: %v", err)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscanf(string(b), "%d", &pid)
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("pid file %q does not name a live process", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("daemon cwd %q; want /", cwd)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if err := testutil.WaitFor(5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }); err != nil {
		t.Fatal("daemon did not exit on SIGTERM")
	}
	for _, p := range []string{ctl, pidf} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	log, _ := os.ReadFile(logf)
	want := bin + " attached to unix socket '" + ctl + "'\nCaught signal 15, cleaning up and exiting\n"
	if string(log) != want {
		t.Errorf("log file = %q; want %q", log, want)
	}
}
