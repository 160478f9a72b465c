package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mconsoletest"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// mcClients returns Debian's uml_mconsole and ours.
func mcClients(t *testing.T) (real, ours string) {
	t.Helper()
	return testutil.Peer(t, "uml_mconsole", "uml-utilities"), harness.Bin(t, "uml_mconsole")
}

// sameOutput runs both clients with the same arguments, stdin, cwd and env
// and fails unless stdout and the exit status match byte for byte.
func sameOutput(t *testing.T, dir string, env []string, stdin string, args ...string) harness.Result {
	t.Helper()
	real, ours := mcClients(t)
	r := harness.RunEnv(t, dir, env, stdin, real, args...)
	o := harness.RunEnv(t, dir, env, stdin, ours, args...)
	if r.Stdout != o.Stdout || r.Code != o.Code {
		t.Errorf("uml_mconsole %q (stdin %q):\n real: exit %d %q\n ours: exit %d %q (stderr %q)",
			args, stdin, r.Code, r.Stdout, o.Code, o.Stdout, o.Stderr)
	}
	return o
}

// TestIntegrationMconsoleClientFake compares the two clients on a fake
// kernel (no guest): local commands, rewriting, errors, interactive echo.
func TestIntegrationMconsoleClientFake(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, ".uml", "fk")
	os.MkdirAll(dir, 0o755)
	f := mconsoletest.Start(t, dir)
	work := t.TempDir()
	os.Mkdir(filepath.Join(work, "sub"), 0o755)
	// Piped sessions keep prompt+line under 80 columns: GNU readline in the
	// real client adds cursor-motion sequences to longer echoed lines
	// (TERM-dependent); ours echoes them plainly (documented difference).
	env := []string{"HOME=" + home, "TERM=xterm"}
	os.Symlink(dir, filepath.Join(work, "sock-link"))
	for _, args := range [][]string{
		{"fk", "version"}, {"fk", " version"}, {"fk", "help"}, {"fk", "helpme"}, {"fk", "log", "hello"}, {"fk", "log"},
		{"fk", "log   a b  "}, {"fk", "logger"}, {"fk", "config", "ubd1=foo,bar"}, {"fk", "config   ubd1=sub/../sub/x"},
		{"fk", "config", "ubd1="}, {"fk", "config", "ubd1=/foo.img"}, {"fk", "config", "ubd1r=nodir/b"},
		{"fk", "config", "ubd1=sock-link/x.cow,./sock-link/../y.img"}, {"fk", "config", "ubd1=/etc/passwd/x"},
		{"fk", "config", "con1=fd:1"}, {"fk", "quitnow"}, {"fk", "mconsole-version"}, {"fk", "int"}, {"fk", "interrupt"},
		{"fk", "switch", "fk"}, {"fk", "switch", "nope"}, {"fk", "umlfs", "0"}, {"fk", "umlfs", "x"},
		{"fk", "remove", "ubd5"}, {"fk", "sysrq", "m"}, {"fk", "stack"}, {"fk", ""}, {"fk", "proc"},
		{"fk", "proc", "meminfo"}, {"fk", "log", strings.Repeat("z", 1100)}, {"fk", "log", "-f", "/etc/hostname"},
		{"fk", "log", "-f", "/nonexistent"}, {f.Path(), "version"}, {"nope", "version"}, {"nope", "mconsole-version"}, {},
	} {
		sameOutput(t, work, env, "", args...)
	}
	for _, stdin := range []string{
		"", "version", "version\n\n  version\nhelp\nswitch ./sock-link/mconsole\nversion\nswitch nope\nint\nlog x\nquit\nversion\n",
		"mconsole-version\nlog -f /nonexistent\nversion\n",
	} {
		sameOutput(t, work, env, stdin, "fk")
		sameOutput(t, work, env, stdin, "nope")
	}
	// GNU readline's redisplay artefacts on long echoed lines, per TERM/COLUMNS.
	var long strings.Builder
	for _, n := range []int{66, 67, 68, 69, 70, 148, 150, 228, 300} {
		long.WriteString("version" + strings.Repeat("x", n) + "\n")
	}
	long.WriteString("versionabcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH\n")
	for _, e := range [][]string{{"TERM="}, {"TERM=dumb"}, {"TERM=xterm"}, {"TERM=vt100", "COLUMNS=60"}, {"TERM=", "COLUMNS=50"}, {"TERM=linux", "COLUMNS=100"}} {
		sameOutput(t, work, append([]string{"HOME=" + home}, e...), long.String(), "fk")
	}
	// Deliberate difference: the real client takes --help as a socket name
	// (warnings, then an empty session); ours prints its help.
	_, ours := mcClients(t)
	if r := harness.RunEnv(t, work, env, "", ours, "--help"); !strings.HasPrefix(r.Stdout, "Usage: uml_mconsole") || r.Code != 0 {
		t.Errorf("uml_mconsole --help = %q, %d", r.Stdout, r.Code)
	}
}

// TestIntegrationMconsole drives one real linux.uml guest with both clients:
// every deterministic command byte for byte, stop/go freezing the guest's
// ticker, config/remove of a ubd, and finally "int" ending the instance.
func TestIntegrationMconsole(t *testing.T) {
	t.Parallel()
	real, ours := mcClients(t)
	dir := t.TempDir()
	img := harness.MconsoleImage(t, dir)
	work := t.TempDir()
	disk := filepath.Join(work, "disk1.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	g := harness.BootMconsoleUML(t, img, "mc")
	env := g.Env()

	t.Run("deterministic", func(t *testing.T) {
		for _, args := range [][]string{
			{"version"}, {"help"}, {"config", "ubd0"}, {"config", "ubd5"}, {"config", "ubdz"}, {"config", "ubd99"},
			{"config", "con0"}, {"config", "con1"}, {"config", "ssl3"}, {"config", "con99"}, {"config", "conx"},
			{"config", "eth0"}, {"config", "mem"}, {"config", "bogus0"}, {"config", "ubd1=/nonexistent/x.img"},
			{"config", "ubd=sync"}, {"config", "eth0=nosuch,x"}, {"config", "con=fd:1"},
			{"remove", "ubd5"}, {"remove", "ubd0"}, {"remove", "ubd99"}, {"remove", "bogus"}, {"remove", "mem"},
			{"bogus"}, {"HELP"}, {" version"}, {""}, {"go"}, {"stack"}, {"stack", "0"}, {"stack", "99999"},
			{"proc"}, {"proc", "nonexistent"}, {"proc", "cmdline"}, {"proc", "version"}, {"sysrq"}, {"sysrq", "8"},
			{"log", "mconsole-interop-log-line"}, {"umlfs", "0"}, {"umlfs", "x"}, {"mconsole-version"},
		} {
			sameOutput(t, work, env, "", append([]string{"mc"}, args...)...)
		}
		sameOutput(t, work, env, "", g.Socket, "version")
		sameOutput(t, work, env, "version\nconfig ubd0\n\nmconsole-version\nbogus\nquit\n", "mc")
		if !strings.Contains(g.Output(), "mconsole-interop-log-line") {
			t.Errorf("log text did not reach the guest console")
		}
		r := harness.RunEnv(t, work, env, "", ours, "mc", "version")
		if !strings.HasPrefix(r.Stdout, "OK Linux umltest 6.1.") || !strings.HasSuffix(r.Stdout, " x86_64\n") {
			t.Errorf("version = %q; want OK Linux umltest 6.1.* x86_64", r.Stdout)
		}
	})

	t.Run("uml_dir and list", func(t *testing.T) {
		r := harness.RunEnv(t, work, []string{"HOME=/nonexistent"}, "", ours, "--uml-dir", g.UMLDir, "mc", "version")
		if !strings.HasPrefix(r.Stdout, "OK Linux") || r.Stderr != "" {
			t.Errorf("--uml-dir: %q, stderr %q", r.Stdout, r.Stderr)
		}
		r = harness.RunEnv(t, work, []string{"HOME=/nonexistent", "UML_DIR=" + g.UMLDir}, "", ours, "mc", "version")
		if !strings.HasPrefix(r.Stdout, "OK Linux") {
			t.Errorf("UML_DIR: %q, stderr %q", r.Stdout, r.Stderr)
		}
		r = harness.RunEnv(t, work, env, "", ours, g.Socket, "version")
		if r.Stderr != "" {
			t.Errorf("valid socket path printed warnings: %q", r.Stderr)
		}
		r = harness.RunEnv(t, work, env, "", ours, "--list")
		pid, _ := os.ReadFile(filepath.Join(g.UMLDir, "mc", "pid"))
		if !regexp.MustCompile(`(?m)^mc +` + strings.TrimSpace(string(pid)) + ` +alive +[0-9.]+[KMG] +/`).MatchString(r.Stdout) {
			t.Errorf("--list = %q; want mc with pid %s alive and its host memory", r.Stdout, pid)
		}
	})

	t.Run("config and remove ubd", func(t *testing.T) {
		var outs [2][]string
		for i, bin := range []string{real, ours} {
			for _, cmd := range []string{"config ubd1=disk1.img", "config ubd1", "config ubd1=disk1.img", "remove ubd1", "config ubd1", "remove ubd1"} {
				r := harness.RunEnv(t, work, env, "", bin, "mc", cmd)
				outs[i] = append(outs[i], r.Stdout+" exit "+string(rune('0'+r.Code%10)))
			}
		}
		if strings.Join(outs[0], "|") != strings.Join(outs[1], "|") {
			t.Errorf("config/remove sequence differs:\n real %q\n ours %q", outs[0], outs[1])
		}
		if want := "OK " + disk + "\n"; !strings.HasPrefix(outs[1][1], want) {
			t.Errorf("config ubd1 after adding = %q; want %q (absolutized by the client)", outs[1][1], want)
		}
	})

	t.Run("stop and go", func(t *testing.T) {
		var outs [2]string
		for i, bin := range []string{real, ours} {
			run := func(cmd string) string {
				r := harness.RunEnv(t, work, env, "", bin, "mc", cmd)
				outs[i] += r.Stdout
				return r.Stdout
			}
			before := g.LastTick()
			run("stop")
			time.Sleep(500 * time.Millisecond)
			frozen := g.LastTick()
			run("stop")
			run("version")
			time.Sleep(time.Second)
			if now := g.LastTick(); now != frozen {
				t.Errorf("%s: ticks went on while stopped: %d -> %d", bin, frozen, now)
			}
			run("go")
			if err := testutil.WaitFor(10*time.Second, func() bool { return g.LastTick() > frozen+2 }); err != nil {
				t.Errorf("%s: ticks did not resume after go (before %d, frozen %d, now %d)", bin, before, frozen, g.LastTick())
			}
			run("go")
		}
		if outs[0] != outs[1] {
			t.Errorf("stop/go outputs differ:\n real %q\n ours %q", outs[0], outs[1])
		}
		want := "OK stopped\nERR Already stopped\nOK Linux"
		if !strings.HasPrefix(outs[1], want) || !strings.HasSuffix(outs[1], "OK \nERR Not stopped\n") {
			t.Errorf("stop/go = %q", outs[1])
		}
	})

	t.Run("streamed output", func(t *testing.T) {
		// (sysrq m/q and "stack <live pid>" get no reply for tens of seconds
		// from this kernel once init runs, with either client.)
		r := harness.RunEnv(t, work, env, "", ours, "mc", "sysrq", "w")
		if r.Stdout != "OK sysrq: Show Blocked State\n\n" || r.Code != 0 {
			t.Errorf("sysrq w = %q, %d (stderr %q)", r.Stdout, r.Code, r.Stderr)
		}
		r = harness.RunEnv(t, work, env, "", ours, "mc", "proc", "meminfo")
		if !strings.HasPrefix(r.Stdout, "OK \nMemTotal:") || r.Code != 0 {
			t.Errorf("proc meminfo = %q, %d (stderr %q)", r.Stdout, r.Code, r.Stderr)
		}
	})

	t.Run("int and gone", func(t *testing.T) {
		r := harness.RunEnv(t, work, env, "", ours, "mc", "int")
		if r.Stdout != "" || r.Code != 0 {
			t.Errorf("int = %q, %d; want silence, 0", r.Stdout, r.Code)
		}
		code, err := g.Wait(30 * time.Second)
		if err != nil || code != 1 {
			t.Fatalf("UML after int: exit %d, %v; want 1", code, err)
		}
		if _, err := os.Stat(g.Socket); err == nil {
			t.Errorf("socket still there after SIGINT")
		}
		r = sameOutput(t, work, env, "", "mc", "version")
		if !strings.Contains(r.Stderr, "no UML instance") {
			t.Errorf("ours on a gone umid: stderr %q; want a clear message", r.Stderr)
		}
	})
}

// TestIntegrationMconsoleRestarts: cad and reboot re-exec the kernel (same
// pid), halt ends it, all through our client (the real client's "OK " for
// empty replies is covered by the other tests; each restart is a full boot).
func TestIntegrationMconsoleRestarts(t *testing.T) {
	t.Parallel()
	_, ours := mcClients(t)
	// One fresh guest per command. The real kernel, under load, now and
	// then answers OK to cad/reboot and then does not restart (seen with
	// Debian's client too); such an attempt is logged and retried once on
	// a new guest, so the test fails only when restarts do not work at all.
	restartOnce := func(t *testing.T, cmd string) error {
		img := harness.MconsoleImage(t, t.TempDir())
		g := harness.BootMconsoleUML(t, img, "mcr")
		work := t.TempDir()
		r := harness.RunEnv(t, work, g.Env(), "", ours, "mcr", cmd)
		if r.Stdout != "OK \n" || r.Code != 0 {
			t.Errorf("%s = %q, %d; want \"OK \\n\", 0", cmd, r.Stdout, r.Code)
		}
		if cmd == "halt" {
			code, err := g.Wait(30 * time.Second)
			if err == nil && code != 0 {
				t.Errorf("UML after halt: exit %d; want 0", code)
			}
			return err
		}
		if err := testutil.WaitFor(45*time.Second, func() bool { return g.Count("MC-READY") >= 2 }); err != nil {
			return fmt.Errorf("guest did not come back (%d boots): %v", g.Count("MC-READY"), err)
		}
		if err := testutil.WaitFor(10*time.Second, func() bool { _, err := os.Stat(g.Socket); return err == nil }); err != nil {
			return fmt.Errorf("socket not recreated after restart")
		}
		return nil
	}
	for _, cmd := range []string{"cad", "reboot", "halt"} {
		t.Run(cmd, func(t *testing.T) {
			if err := restartOnce(t, cmd); err != nil {
				t.Logf("%s, first guest: %v; retrying on a new guest", cmd, err)
				if err := restartOnce(t, cmd); err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
			}
		})
	}
}

// TestIntegrationWatchdog compares our uml_watchdog with Debian's: argv
// rejection, the ready byte, EOF, and the 24-byte HANG packet after 60 s
// of silence (both run at once).
func TestIntegrationWatchdog(t *testing.T) {
	t.Parallel()
	real := testutil.Peer(t, "uml_watchdog", "uml-utilities")
	ours := harness.Bin(t, "uml_watchdog")
	for _, args := range [][]string{{}, {"-pid"}, {"-x", "1"}, {"-pid", "12x"}, {"-pid", "999999999"}, {"-pid", "1"}, {"-pid", "0x1"}} {
		var res [2]harness.Result
		for i, bin := range []string{real, ours} {
			res[i] = harness.RunEnv(t, "", nil, "", bin, args...) // stdin at EOF
		}
		if res[0] != res[1] {
			t.Errorf("uml_watchdog %q: real %+v, ours %+v", args, res[0], res[1])
		}
	}
	if testing.Short() {
		t.Skip("the HANG comparison waits 60 s")
	}
	dir := t.TempDir()
	type result struct {
		pkt  []byte
		code int
	}
	results := make(chan result, 2)
	for i, bin := range []string{real, ours} {
		sock := filepath.Join(dir, "notify"+string(rune('0'+i)))
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cmd := exec.Command(bin, "-mconsole", sock)
		stdin, _ := cmd.StdinPipe() // held open, never written: no pings
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill() })
		go func() {
			conn.SetReadDeadline(time.Now().Add(75 * time.Second))
			b := make([]byte, 100)
			n, _ := conn.Read(b)
			cmd.Wait()
			results <- result{append(b[:n:n], out.Bytes()...), cmd.ProcessState.ExitCode()}
		}()
	}
	a, b := <-results, <-results
	// packet then the ready byte seen on stdout. The real helper leaves the
	// 4 padding bytes (20..23) uninitialised (stack garbage seen); ours are 0.
	want := append(mconsole.WatchdogHangPacket(), 0)
	for _, r := range []result{a, b} {
		if len(r.pkt) != len(want) || !bytes.Equal(r.pkt[:20], want[:20]) || r.pkt[24] != 0 || r.code != 1 {
			t.Errorf("HANG: got %x exit %d; want %x (padding aside) exit 1", r.pkt, r.code, want)
		}
	}
}
