package e2e

// Consoles and serial lines of our linux (spec channels.md §1-§4): pts,
// null, fd:N, port (Debian's in.telnetd and port-helper), xterm (a stand-in
// emulator), the parse-failure lines compared with linux.uml, and mconsole
// config queries through Debian's uml_mconsole.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// shellOn starts a shell on each guest tty named (tty1, ttyS0, ...), says
// GUEST-UP and idles.
func shellOn(ttys ...string) string {
	var b strings.Builder
	for _, t := range ttys {
		fmt.Fprintf(&b, "setsid sh -c 'exec sh </dev/%s >/dev/%s 2>&1' &\n", t, t)
	}
	b.WriteString("echo GUEST-UP\nwhile :; do sleep 1; done\n")
	return b.String()
}

var announceRE = regexp.MustCompile(`(Virtual console|Serial line) (\d+) assigned device '(/dev/pts/\d+)'`)

// announced waits for the announcement of line n and returns the pts path.
func announced(t *testing.T, g *harness.Guest, what string, n int) string {
	t.Helper()
	prefix := fmt.Sprintf("%s %d assigned device '", what, n)
	if err := g.WaitOutput(prefix, bootTimeout); err != nil {
		t.Fatal(err)
	}
	for _, m := range announceRE.FindAllStringSubmatch(g.Output(), -1) {
		if m[1] == what && m[2] == fmt.Sprint(n) {
			return m[3]
		}
	}
	t.Fatalf("no announcement of %s %d in %q", what, n, g.Output())
	return ""
}

// attach opens a host pts and collects what it reads.
func attach(t *testing.T, path string) (*os.File, *testutil.SyncBuffer) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	s := &testutil.SyncBuffer{}
	go io.Copy(s, f)
	return f, s
}

func waitScreen(t *testing.T, s *testutil.SyncBuffer, want string) {
	t.Helper()
	if err := testutil.WaitFor(30*time.Second, func() bool { return strings.Contains(s.String(), want) }); err != nil {
		t.Fatalf("waiting for %q on the line (got %q)", want, s.String())
	}
}

// mconsoleRun runs Debian's uml_mconsole on sock.
func mconsoleRun(t *testing.T, mc, sock, home string, cmd ...string) string {
	t.Helper()
	c := exec.Command(mc, append([]string{sock}, cmd...)...)
	c.Env = append(os.Environ(), "HOME="+home)
	out, _ := c.Output()
	return string(out)
}

// TestIntegrationLinuxConsolePts: con1=pts and ssl0=pts announce their host
// pts when the guest's shells open them; typing into the pts reaches the
// guest shell; Debian's uml_mconsole reads the pts names back with config.
// As root and as an ordinary user.
func TestIntegrationLinuxConsolePts(t *testing.T) {
	requireLinuxHost(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	run := func(t *testing.T, start func(argv ...string) *harness.Guest, umlDir string, img string) {
		g := start(harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=pts1", "con1=pts", "ssl0=pts")
		if err := g.WaitOutput("GUEST-UP", bootTimeout); err != nil {
			t.Fatal(err)
		}
		tty1 := announced(t, g, "Virtual console", 1)
		ttyS0 := announced(t, g, "Serial line", 0)
		f, screen := attach(t, tty1)
		f.Write([]byte("echo PTS-$(( 6 * 7 ))-$(tty)\r"))
		waitScreen(t, screen, "PTS-42-/dev/tty1")
		f2, screen2 := attach(t, ttyS0)
		f2.Write([]byte("echo SER-$(( 6 * 7 ))-$(tty)\r"))
		waitScreen(t, screen2, "SER-42-/dev/ttyS0")

		sock := filepath.Join(umlDir, "pts1", "mconsole")
		for cmd, want := range map[string]string{
			"con1": "OK pts:" + tty1 + "\n", "ssl0": "OK pts:" + ttyS0 + "\n", "con0": "OK fd:0,fd:1\n",
			"con2": "OK none\n", "ssl1": "OK pty\n",
		} {
			if got := mconsoleRun(t, mc, sock, umlDir, "config", cmd); got != want {
				t.Errorf("uml_mconsole config %s = %q; want %q", cmd, got, want)
			}
		}
		f.Write([]byte("poweroff -f\r"))
		if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
			t.Errorf("exit after poweroff = %d, %v", code, err)
		}
	}
	t.Run("root", func(t *testing.T) {
		testutil.RequireRoot(t)
		img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: shellOn("tty1", "ttyS0")})
		run(t, func(argv ...string) *harness.Guest { return harness.Start(t, nil, argv...) }, t.TempDir(), img)
	})
	// The control: Debian's linux.uml with the same lines prints the same
	// announcements and mconsole answers (the pts numbers differ).
	t.Run("linux.uml", func(t *testing.T) {
		img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: shellOn("tty1", "ttyS0")})
		home := t.TempDir()
		umlDir := filepath.Join(home, ".uml")
		g := harness.Start(t, []string{"TMPDIR=" + home}, harness.RealUML(t), "ubd0="+img, "mem=64M", "con0=fd:0,fd:1",
			"con=null", "ssl=null", "con1=pts", "ssl0=pts", "init=/init", "uml_dir="+umlDir, "umid=pts1")
		if err := g.WaitOutput("GUEST-UP", 2*bootTimeout); err != nil {
			t.Fatal(err)
		}
		tty1 := announced(t, g, "Virtual console", 1)
		ttyS0 := announced(t, g, "Serial line", 0)
		f, screen := attach(t, tty1)
		f.Write([]byte("echo PTS-$(( 6 * 7 ))-$(tty)\r"))
		waitScreen(t, screen, "PTS-42-/dev/tty1")
		for cmd, want := range map[string]string{
			"con1": "OK pts:" + tty1 + "\n", "ssl0": "OK pts:" + ttyS0 + "\n", "con0": "OK fd:0,fd:1\n",
		} {
			if got := mconsoleRun(t, mc, filepath.Join(umlDir, "pts1", "mconsole"), home, "config", cmd); got != want {
				t.Errorf("linux.uml: uml_mconsole config %s = %q; want %q", cmd, got, want)
			}
		}
		f.Write([]byte("poweroff -f\r"))
		g.Wait(bootTimeout)
	})
	t.Run("user", func(t *testing.T) {
		u := harness.UnprivilegedUser(t)
		requireLinuxHostAs(t, u)
		home := u.Dir(t)
		img := harness.BusyboxImage(t, home, harness.Image{Init: shellOn("tty1", "ttyS0")})
		u.Chown(t, img)
		run(t, func(argv ...string) *harness.Guest { return harness.StartAs(t, u, argv...) }, filepath.Join(home, "uml"), img)
	})
}

// channelsInit writes to the guest lines of TestIntegrationLinuxConsoleChannels.
const channelsInit = `ls /dev/tty1 /dev/tty2 /dev/tty3 /dev/tty4 /dev/tty5 /dev/ttyS0 /dev/ttyS1 2>&1
echo to-null > /dev/tty2; echo rc-null=$?
echo to-fd3 > /dev/tty3; echo rc-fd3=$?
echo to-split > /dev/tty4; echo rc-split=$?
echo to-pty > /dev/ttyS1; echo rc-pty=$?
echo to-hosttty > /dev/tty11; echo rc-tty=$?
sleep 1
echo GUEST-DONE
echo to-last > /dev/tty3
poweroff -f
`

// invalidSpecs are lines whose spec does not parse (printed at boot).
var invalidSpecs = []string{"con5=fd", "con6=fd:x", "con7=foo", "con8=port", "con9=port:x", "ssl2=tty", "con10=fdx:3"}

// TestIntegrationLinuxConsoleChannels: null discards, fd:3 reaches the host
// fd 3, an IN,OUT split writes to its OUT, the default ssl pty fails with
// UML's line, none lines do not exist, and the parse failures print exactly
// what linux.uml prints for the same command line.
func TestIntegrationLinuxConsoleChannels(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: channelsInit})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	umlDir := t.TempDir()
	// con11=tty:DEV on a host pty the test holds the master of.
	hostTTY, hostTTYSlave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer hostTTY.Close()
	hostTTYName := hostTTYSlave.Name()
	defer hostTTYSlave.Close() // open, so that reading the master waits instead of failing with EIO
	ttyOut := &testutil.SyncBuffer{}
	go io.Copy(ttyOut, hostTTY)
	cmd := exec.Command(harness.Bin(t, "linux"), append([]string{"ubd0=" + img, "init=/init", "uml_dir=" + umlDir, "umid=chan1",
		"con2=null", "con3=fd:3", "con4=null,fd:3", "ssl0=null", "con1=none", "con11=tty:" + hostTTYName}, invalidSpecs...)...)
	cmd.ExtraFiles = []*os.File{w}
	g := harness.StartCmd(t, cmd)
	w.Close()
	var fd3 testutil.SyncBuffer
	go io.Copy(&fd3, r)
	if err := g.WaitOutput("GUEST-DONE", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(g.Output(), "\r", "")
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(ttyOut.String(), "to-hosttty") }); err != nil {
		t.Errorf("tty:%s got %q; want to-hosttty", hostTTYName, ttyOut.String())
	}
	for _, want := range []string{"rc-null=0", "rc-fd3=0", "rc-split=0", "rc-pty=0", "rc-tty=0", "getmaster - no usable host pty devices\n",
		"ls: /dev/tty1: No such file or directory", "ls: /dev/tty5: No such file or directory", "/dev/ttyS0", "/dev/ttyS1"} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q", want)
		}
	}
	if strings.Contains(out, "to-null") || strings.Contains(out, "to-fd3") {
		t.Errorf("line output leaked to the console")
	}
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(fd3.String(), "to-split") }); err != nil {
		t.Errorf("host fd 3 got %q; want to-fd3 and to-split", fd3.String())
	}
	// to-last was written just before poweroff -f: the line is drained.
	// tty3 and tty4 are separate lines, each copied when the watcher sees
	// it opened, so their first writes may reach fd 3 in either order.
	if got := fd3.String(); got != "to-fd3\r\nto-split\r\nto-last\r\n" && got != "to-split\r\nto-fd3\r\nto-last\r\n" {
		t.Errorf("host fd 3 got %q; want to-fd3 and to-split (either order), then to-last", got)
	}
	if strings.Contains(out, "setup_one_line failed for device 11 ") {
		t.Errorf("default con1-15 print setup_one_line failures; we treat the default as none")
	}
	ours := parseFailures(out)
	t.Logf("parse failures (ours):\n%s", ours)

	// The same lines on the real kernel, byte for byte.
	if _, err := os.Stat("/usr/bin/linux.uml"); err != nil {
		t.Logf("comparison with linux.uml skipped: not installed")
		return
	}
	realImg := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "poweroff -f"})
	rg := harness.BootRealUML(t, realImg, append(invalidSpecs, "con1=none")...)
	if _, err := rg.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	real := parseFailures(strings.ReplaceAll(rg.Output(), "\r", ""))
	if ours != real {
		t.Errorf("parse failure lines differ:\nours:\n%s\nlinux.uml:\n%s", ours, real)
	}
}

// parseFailures returns the channel parse failure lines of a boot log.
func parseFailures(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "] "); strings.HasPrefix(l, "[") && i > 0 {
			l = l[i+2:] // the real kernel's timestamps
		}
		if strings.HasPrefix(l, "setup_one_line failed") || strings.Contains(l, "_init : ") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestIntegrationLinuxConsolePort: ssl0=port:P with Debian's in.telnetd and
// port-helper: a telnet connection reaches the guest's shell on ttyS0, a
// second one gets the "no one waiting" text; mconsole config answers port:P.
func TestIntegrationLinuxConsolePort(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	if _, err := os.Stat(realPortHelper); err != nil {
		testutil.Skip(t, "%s not installed (uml-utilities)", realPortHelper)
	}
	harness.Subreaper(t)
	// A shell on ttyS0 that is started again when it exits (getty-like).
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: `(while :; do setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'; done) &
echo GUEST-UP
while :; do sleep 1; done
`})
	dir, label := harness.TelnetdDir(t)
	t.Logf("in.telnetd: %s", label)
	port := harness.FreeTCPPort(t)
	umlDir := t.TempDir()
	g := harness.Start(t, []string{"PATH=" + dir + ":" + os.Getenv("PATH")}, harness.Bin(t, "linux"),
		"ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=port1", fmt.Sprintf("ssl0=port:%d", port))
	if err := g.WaitOutput("GUEST-UP", bootTimeout); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	tn := harness.DialTelnet(t, addr)
	tn.Send("echo PORT-$(( 6 * 7 ))-$(tty)\r")
	if err := tn.WaitFor("PORT-42-/dev/ttyS0", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(umlDir, "port1", "mconsole")
	if got, want := mconsoleRun(t, mc, sock, umlDir, "config", "ssl0"), fmt.Sprintf("OK port:%d\n", port); got != want {
		t.Errorf("config ssl0 = %q; want %q", got, want)
	}
	tn2 := harness.DialTelnet(t, addr)
	if err := tn2.WaitFor("****\n\x00", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := tn2.Output(); !strings.HasSuffix(got, noWaiterMsg) {
		t.Errorf("pending connection got %q; want suffix %q", got, noWaiterMsg)
	}
	// Logged right after the text is written, but through K's log path:
	// under load that may take more than a moment.
	if err := g.WaitOutput("No one waiting for port", 30*time.Second); err != nil {
		t.Error(err)
	}
	// The first client leaves: the line's shell is hung up, its
	// successor opens the line and the pending connection gets it.
	tn.Close()
	tn2.Send("echo SECOND-$(( 6 * 7 ))\r")
	if err := tn2.WaitFor("SECOND-42", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tn2.Send("poweroff -f\r")
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	for _, p := range harness.Orphans(t, 30*time.Second) {
		t.Errorf("left behind after the guest halted: %v", p)
	}
}

// TestIntegrationLinuxConsoleXterm: con1=xterm runs the emulator (a
// stand-in: this test binary) with UML's argv; the guest shell on tty1
// appears on its terminal; without $DISPLAY the open fails with UML's line.
func TestIntegrationLinuxConsoleXterm(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	if _, err := os.Stat(realPortHelper); err != nil {
		testutil.Skip(t, "%s not installed (uml-utilities)", realPortHelper)
	}
	harness.Subreaper(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: shellOn("tty1")})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	x := harness.NewFakeXterm(t)
	umlDir := t.TempDir()
	g := harness.Start(t, x.Env, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=xt1",
		"con1=xterm", "xterm="+self+",-T,-e")
	if err := g.WaitOutput("GUEST-UP", bootTimeout); err != nil {
		t.Fatal(err)
	}
	relay := x.Accept(t)
	screen := &testutil.SyncBuffer{}
	go io.Copy(screen, relay)
	relay.Write([]byte("echo XT-$(( 6 * 7 ))-$(tty)\r"))
	waitScreen(t, screen, "XT-42-/dev/tty1")
	x.CheckArgv(t, "xt1")
	relay.Write([]byte("poweroff -f\r"))
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	for _, p := range harness.Orphans(t, 5*time.Second) {
		t.Errorf("left behind after the guest halted: %v", p)
	}

	// No $DISPLAY: UML's message when the guest opens the line.
	img2 := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo x > /dev/tty1; sleep 1; poweroff -f"})
	cmd := exec.Command(harness.Bin(t, "linux"), "ubd0="+img2, "init=/init", "uml_dir="+t.TempDir(), "con1=xterm")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISPLAY=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	g2 := harness.StartCmd(t, cmd)
	if _, err := g2.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g2.Output(), "xterm_open: $DISPLAY not set.\r\n") {
		t.Errorf("no DISPLAY: output lacks UML's line:\n%s", g2.Output())
	}
}

// TestIntegrationLinuxConsoleConfigChange: Debian's uml_mconsole changes a
// closed line (config con2=pts, announced when the guest opens it), is
// refused for an open one and for con=, and reads the stored spec back.
func TestIntegrationLinuxConsoleConfigChange(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: `setsid sh -c 'exec sh </dev/tty1 >/dev/tty1 2>&1' &
echo GUEST-UP
while [ ! -e /tmp/go ]; do sleep 0.2; done
echo to-tty2 > /dev/tty2
echo TTY2-DONE
while :; do sleep 1; done
`})
	umlDir := t.TempDir()
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=cfg1",
		"con1=pts", "con2=null,fd:1")
	if err := g.WaitOutput("GUEST-UP", bootTimeout); err != nil {
		t.Fatal(err)
	}
	tty1 := announced(t, g, "Virtual console", 1)
	sock := filepath.Join(umlDir, "cfg1", "mconsole")
	mcs := func(cmd ...string) string { return mconsoleRun(t, mc, sock, umlDir, cmd...) }
	for _, c := range []struct{ cmd, want string }{
		{"config con2", "OK null\n"},
		{"config con1=null", "ERR Device is already open\n"},
		{"config con=null", "ERR Can't configure all devices from mconsole\n"},
		{"config con2=bogus", "ERR failed to parse channel pair\n"},
		{"config con99=null", "ERR Device number out of range\n"},
		{"config conx=null", "ERR Couldn't parse device number\n"},
		{"config con2=pts", "OK \n"},
		{"config con2", "OK pts\n"},
	} {
		if got := mcs(strings.Fields(c.cmd)...); got != c.want {
			t.Errorf("uml_mconsole %s = %q; want %q", c.cmd, got, c.want)
		}
	}
	f, _ := attach(t, tty1)
	f.Write([]byte("touch /tmp/go\r"))
	tty2 := announced(t, g, "Virtual console", 2)
	if err := g.WaitOutput("TTY2-DONE", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if tty2 == tty1 {
		t.Errorf("con2 got con1's pts %s", tty2)
	}
	f.Write([]byte("poweroff -f\r"))
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationLinuxConsolePortUnprivileged: the port channel of an
// ordinary user's linux (in.telnetd runs in the kernel process's user
// namespace).
func TestIntegrationLinuxConsolePortUnprivileged(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	if _, err := os.Stat(realPortHelper); err != nil {
		testutil.Skip(t, "%s not installed (uml-utilities)", realPortHelper)
	}
	home := u.Dir(t)
	img := harness.BusyboxImage(t, home, harness.Image{Init: shellOn("ttyS0")})
	u.Chown(t, img)
	tdir, label := harness.TelnetdDir(t)
	t.Logf("in.telnetd: %s", label)
	userBin := filepath.Join(home, "bin")
	if out, err := exec.Command("cp", "-a", tdir, userBin).CombinedOutput(); err != nil {
		t.Fatalf("copy telnetd dir: %v: %s", err, out)
	}
	exec.Command("chown", "-R", fmt.Sprintf("%d:%d", u.UID, u.GID), userBin).Run()
	port := harness.FreeTCPPort(t)
	cmd := u.Command(harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+filepath.Join(home, "uml"), "umid=uport",
		fmt.Sprintf("ssl0=port:%d", port))
	for i, kv := range cmd.Env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			cmd.Env[i] = "PATH=" + userBin + ":" + p
		}
	}
	g := harness.StartCmd(t, cmd)
	if err := g.WaitOutput("GUEST-UP", bootTimeout); err != nil {
		t.Fatal(err)
	}
	tn := harness.DialTelnet(t, fmt.Sprintf("127.0.0.1:%d", port))
	tn.Send("echo UPORT-$(( 6 * 7 ))-$(tty)-$(id -u)\r")
	if err := tn.WaitFor("UPORT-42-/dev/ttyS0-0", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tn.Send("poweroff -f\r")
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationLinuxConsoleCon0: a console other than fd:0,fd:1 — the
// guest's console and the boot log from K go to fd 3; mconsole reports it.
func TestIntegrationLinuxConsoleCon0(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo CON0-ON-FD3; echo READY; read x; echo GOT-$x; poweroff -f"})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	umlDir := t.TempDir()
	cmd := exec.Command(harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=c0", "con0=fd:0,fd:3")
	cmd.ExtraFiles = []*os.File{w}
	g := harness.StartCmd(t, cmd)
	w.Close()
	var fd3 testutil.SyncBuffer
	go io.Copy(&fd3, r)
	if err := testutil.WaitFor(bootTimeout, func() bool { return strings.Contains(fd3.String(), "READY") }); err != nil {
		t.Fatalf("console output never reached fd 3 (got %q; stdout %q)", fd3.String(), g.Output())
	}
	if got := mconsoleRun(t, mc, filepath.Join(umlDir, "c0", "mconsole"), umlDir, "config", "con0"); got != "OK fd:0,fd:3\n" {
		t.Errorf("config con0 = %q", got)
	}
	g.Stdin().Write([]byte("typed\n")) // fd 0 is still the console's input
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fd3.String(), "CON0-ON-FD3") || !strings.Contains(fd3.String(), "GOT-typed") ||
		!strings.Contains(fd3.String(), "Run /init as init process") {
		t.Errorf("fd 3 got %q; want the guest's console output and the boot log", fd3.String())
	}
	if strings.Contains(g.Output(), "CON0-ON-FD3") {
		t.Errorf("console output on stdout too: %q", g.Output())
	}
}
