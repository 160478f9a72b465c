package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// The test binary doubles as the stand-in terminal emulator for the xterm
// channel: the kernel runs it as "<e2e.test> -T TITLE -e port-helper ...".
func init() {
	if os.Getenv(harness.FakeXtermEnv) != "" {
		os.Exit(harness.FakeXtermMain(os.Args[1:]))
	}
}

// realPortHelper is the Debian helper the kernel runs by default.
const realPortHelper = "/usr/lib/uml/port-helper"

// noWaiterMsg is what the kernel writes to a connection nobody waits for
// (spec channels.md §3.7), NUL included.
const noWaiterMsg = "****\nThere are currently no UML consoles waiting for port connections.\n" +
	"Either disconnect from one to make it available or activate some more\n" +
	"by enabling more consoles in the UML /etc/inittab.\n****\n\x00"

// shellOnTTY1 starts a shell on /dev/tty1 (con1) in the background; opening
// the port line blocks until a telnet connection is handed over.
const shellOnTTY1 = `setsid sh -c 'exec sh </dev/tty1 >/dev/tty1 2>&1' &
echo GUEST-UP
while :; do sleep 1; done
`

func helpers(t *testing.T) []struct{ name, path string } {
	hs := []struct{ name, path string }{{"ours", harness.Bin(t, "port-helper")}}
	if _, err := os.Stat(realPortHelper); err == nil {
		hs = append(hs, struct{ name, path string }{"real", realPortHelper})
	} else {
		t.Logf("control with the real helper skipped: %s not installed (uml-utilities)", realPortHelper)
	}
	return hs
}

// bootPortUML boots the real kernel with con1 on a loopback-tested TCP port,
// in.telnetd from telnetdDir and port-helper at helper (ours through
// UML_PORT_HELPER, the real one at its default path).
func bootPortUML(t *testing.T, img, helper string, port int) *harness.Guest {
	t.Helper()
	uml := harness.RealUML(t)
	dir, label := harness.TelnetdDir(t)
	t.Logf("in.telnetd: %s; port-helper: %s", label, helper)
	umlDir := t.TempDir()
	env := []string{"TMPDIR=" + umlDir, "PATH=" + dir + ":" + os.Getenv("PATH")}
	if helper != realPortHelper {
		env = append(env, "UML_PORT_HELPER="+helper)
	}
	return harness.Start(t, env, uml, "ubd0="+img, "mem=64M", "con0=fd:0,fd:1", "con=null",
		fmt.Sprintf("con1=port:%d", port), "ssl=null", "init=/init", "uml_dir="+umlDir, "umid=ph")
}

// TestIntegrationPortChannelTelnet: a telnet client reaches the guest's shell
// on con1=port:P through Debian's in.telnetd and port-helper (ours, and the
// real one as the control), runs a command and reads its output; a second
// connection gets the kernel's "no one waiting" text; after the guest halts,
// our helper leaves no process behind.
func TestIntegrationPortChannelTelnet(t *testing.T) {
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: shellOnTTY1})
	for _, h := range helpers(t) {
		t.Run(h.name, func(t *testing.T) {
			harness.Subreaper(t)
			port := harness.FreeTCPPort(t)
			g := bootPortUML(t, img, h.path, port)
			if err := g.WaitOutput("GUEST-UP", 120*time.Second); err != nil {
				t.Fatal(err)
			}
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			tn := harness.DialTelnet(t, addr)
			tn.Send("echo PH-$(( 6 * 7 ))-$(tty)\r")
			if err := tn.WaitFor("PH-42-/dev/tty1", 30*time.Second); err != nil {
				t.Fatal(err)
			}

			// A second connection: nobody waits on the port, so the kernel
			// writes its notice and keeps the connection pending.
			tn2 := harness.DialTelnet(t, addr)
			if err := tn2.WaitFor("****\n\x00", 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := tn2.Output(); !strings.HasSuffix(got, noWaiterMsg) {
				t.Errorf("pending connection got %q; want suffix %q", got, noWaiterMsg)
			}
			if err := g.WaitOutput("No one waiting for port", 5*time.Second); err != nil {
				t.Error(err)
			}

			tn.Send("poweroff -f\r")
			if _, err := g.Wait(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			left := harness.Orphans(t, 5*time.Second)
			if h.name == "ours" {
				for _, p := range left {
					t.Errorf("left behind after the kernel halted: %v", p)
				}
				if len(left) > 0 {
					out, _ := exec.Command("sh", "-c", "ps -eo pid,ppid,sid,stat,wchan:20,args --forest | grep -E 'telnetd|port-helper' | grep -v grep").CombinedOutput()
					t.Logf("telnetd and port-helper processes:\n%s", out)
				}
				select {
				case <-tn2.Closed():
				case <-time.After(5 * time.Second):
					t.Errorf("pending telnet connection still open after the kernel halted")
				}
			} else {
				// The documented quirk of the real helper (spec §3.7).
				t.Logf("real helper: left behind after halt: %v", left)
			}
		})
	}
}

// TestIntegrationPortHelperKernelGone: the kernel halts while in.telnetd (made
// slow by a wrapper) is still starting, so port-helper starts with its kernel
// already gone. The real helper then stays forever with its in.telnetd (the
// quirk of spec §3.7); ours ends in.telnetd and itself, closing the
// connection.
func TestIntegrationPortHelperKernelGone(t *testing.T) {
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo GUEST-UP\nsleep 2\npoweroff -f\n"})
	for _, h := range helpers(t) {
		t.Run(h.name, func(t *testing.T) {
			harness.Subreaper(t)
			inner, label := harness.TelnetdDir(t)
			slow := t.TempDir()
			wrapper := "#!/bin/sh\nsleep 5\nexec " + filepath.Join(inner, "in.telnetd") + " \"$@\"\n"
			if err := os.WriteFile(filepath.Join(slow, "in.telnetd"), []byte(wrapper), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Logf("in.telnetd: %s, 5 s late; port-helper: %s", label, h.path)
			port := harness.FreeTCPPort(t)
			umlDir := t.TempDir()
			env := []string{"TMPDIR=" + umlDir, "PATH=" + slow + ":" + os.Getenv("PATH")}
			if h.path != realPortHelper {
				env = append(env, "UML_PORT_HELPER="+h.path)
			}
			g := harness.Start(t, env, harness.RealUML(t), "ubd0="+img, "mem=64M", "con0=fd:0,fd:1", "con=null",
				fmt.Sprintf("con1=port:%d", port), "ssl=null", "init=/init", "uml_dir="+umlDir, "umid=phg")
			if err := g.WaitOutput("GUEST-UP", 120*time.Second); err != nil {
				t.Fatal(err)
			}
			tn := harness.DialTelnet(t, fmt.Sprintf("127.0.0.1:%d", port))
			if err := tn.WaitFor("****\n\x00", 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := g.Wait(60 * time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Second) // in.telnetd and the helper start now
			if h.name != "ours" {
				t.Logf("real helper: left behind: %v", harness.Orphans(t, 3*time.Second))
				return
			}
			select {
			case <-tn.Closed():
			case <-time.After(20 * time.Second):
				t.Errorf("telnet connection still open 20 s after in.telnetd started without a kernel")
			}
			for _, p := range harness.Orphans(t, 10*time.Second) {
				t.Errorf("left behind: %v", p)
			}
		})
	}
}

// TestPortHelperArgv: in.telnetd's login-style arguments are ignored (no help
// text for -h), and -uml-socket failures read as the real helper's.
func TestPortHelperArgv(t *testing.T) {
	bin := harness.Bin(t, "port-helper")
	dir := t.TempDir()
	for _, args := range [][]string{{"-uml-socket", filepath.Join(dir, "nope")}, {"-uml-socket"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		want := "connect: No such file or directory\n"
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || string(out) != want {
			t.Errorf("port-helper %q = %q, %v; want %q, exit 1", args, out, err, want)
		}
		if _, err := os.Stat(realPortHelper); err == nil {
			cmd := exec.Command(realPortHelper, args...)
			cmd.Dir = dir
			rout, _ := cmd.CombinedOutput()
			if string(rout) != string(out) {
				t.Errorf("port-helper %q: ours %q, real %q", args, out, rout)
			}
		}
	}
	// "-h localhost -p": the helper tries fd 3, which is not a socket here.
	cmd := exec.Command(bin, "-h", "localhost", "-p")
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "Usage") ||
		!strings.HasPrefix(string(out), "TIOCNOTTY failed in port-helper, check UML's exec call for xterm or telnetd: ") {
		t.Errorf("port-helper -h localhost -p = %q, %v; want the TIOCNOTTY notice and a send error, no usage", out, err)
	}
}

// TestIntegrationXtermChannel: con1=xterm with a stand-in emulator (this test
// binary, see init): the kernel runs it with the real argv, port-helper (ours,
// put in place of /usr/lib//uml/port-helper by the stand-in; the real one as
// the control) hands the emulator's pty to the kernel, and the guest's shell
// on tty1 appears on that pty.
func TestIntegrationXtermChannel(t *testing.T) {
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: shellOnTTY1})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range helpers(t) {
		t.Run(h.name, func(t *testing.T) {
			harness.Subreaper(t)
			x := harness.NewFakeXterm(t)
			umlDir := t.TempDir()
			env := append([]string{"TMPDIR=" + umlDir}, x.Env...)
			if h.name == "ours" {
				env = append(env, harness.FakeXtermHelperEnv+"="+h.path)
			}
			g := harness.Start(t, env, harness.RealUML(t), "ubd0="+img, "mem=64M", "con0=fd:0,fd:1", "con=null",
				"con1=xterm", "xterm="+self+",-T,-e", "ssl=null", "init=/init", "uml_dir="+umlDir, "umid=phx")
			if err := g.WaitOutput("GUEST-UP", 120*time.Second); err != nil {
				t.Fatal(err)
			}
			relay := x.Accept(t)
			screen := &testutil.SyncBuffer{}
			go io.Copy(screen, relay)
			relay.Write([]byte("echo XT-$(( 6 * 7 ))-$(tty)\r"))
			if err := testutil.WaitFor(30*time.Second, func() bool { return strings.Contains(screen.String(), "XT-42-/dev/tty1") }); err != nil {
				t.Fatalf("guest shell output never appeared on the emulator's pty (got %q)", screen.String())
			}
			x.CheckArgv(t, "phx")

			relay.Write([]byte("poweroff -f\r"))
			if _, err := g.Wait(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			left := harness.Orphans(t, 5*time.Second)
			if h.name == "ours" {
				for _, p := range left {
					t.Errorf("left behind after the kernel halted: %v", p)
				}
			} else {
				t.Logf("real helper: left behind after halt: %v", left)
			}
		})
	}
}

// TestPortHelperHandOverMatchesReal runs ours and Debian's helper the way a
// terminal emulator does (-uml-socket, on a fresh pty as controlling
// terminal) and compares what arrives: a 4-byte host-order pid of the
// helper, one fd that is the pty, from the abstract address "\0%5d" padded
// to the whole sun_path, and nothing on stderr.
func TestPortHelperHandOverMatchesReal(t *testing.T) {
	bins := helpers(t)
	type seen struct {
		msgLen, fds  int
		pidOK, ttyOK bool
		addr, stderr string
	}
	var got []seen
	for _, h := range bins {
		dir := t.TempDir()
		sock := filepath.Join(dir, "xterm-pipeTEST01")
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(h.path, "-uml-socket", sock)
		var stderr strings.Builder
		cmd.Stderr = &stderr // a pipe: the TIOCNOTTY notice would show here
		ptm, err := pty.StartWithAttrs(cmd, nil, &syscall.SysProcAttr{Setsid: true, Setctty: true})
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf, oob := make([]byte, 64), make([]byte, 64)
		n, oobn, _, from, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatalf("%s: no message: %v", h.name, err)
		}
		s := seen{msgLen: n}
		if n == 4 {
			s.pidOK = int(binary.NativeEndian.Uint32(buf[:4])) == cmd.Process.Pid
		}
		msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			fds, _ := syscall.ParseUnixRights(&m)
			for _, fd := range fds {
				s.fds++
				f := os.NewFile(uintptr(fd), "received")
				f.Write([]byte("ping\n"))
				b := make([]byte, 64)
				ptm.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, _ := ptm.Read(b)
				s.ttyOK = strings.Contains(string(b[:k]), "ping")
				f.Close()
			}
		}
		if from != nil {
			// "%5d": a pid under 10000 is space-padded in the name.
			s.addr = strings.Replace(from.Name, fmt.Sprintf("%5d", cmd.Process.Pid), "PID", 1)
		}
		// /proc/net/unix shows the bound name whole, NULs as '@'.
		want := "@" + fmt.Sprintf("%5d", cmd.Process.Pid) + strings.Repeat("@", 102)
		if b, _ := os.ReadFile("/proc/net/unix"); !strings.Contains(string(b), " "+want+"\n") {
			t.Errorf("%s: no socket bound to %q (addrlen 110)", h.name, want)
		}
		cmd.Process.Kill()
		cmd.Wait()
		ptm.Close()
		conn.Close()
		s.stderr = stderr.String()
		got = append(got, s)
	}
	want := seen{msgLen: 4, fds: 1, pidOK: true, ttyOK: true, addr: "@PID"}
	for i, s := range got {
		if s != want {
			t.Errorf("%s helper: %+v; want %+v", bins[i].name, s, want)
		}
	}
}
