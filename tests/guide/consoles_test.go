package guide

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

func init() {
	covered = append(covered,
		// 05-consoles.md
		"cons-boot", "cons-inittab", "cons-config", "cons-screen", "cons-telnet", "cons-halt")
}

// term is an interactive host program (screen, telnet) run on a pty.
type term struct {
	f   *os.File
	cmd *exec.Cmd
	mu  sync.Mutex
	out strings.Builder
}

// startTerm runs host block name under a pseudo-terminal, as a user at a
// terminal would; it is killed at cleanup.
func (s *session) startTerm(name string) *term {
	s.t.Helper()
	b := s.text(name)
	s.t.Logf("$ %s(on a terminal)", b.text)
	cmd := exec.Command("sh", "-ec", b.text)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Env = append(cmd.Env, "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	tm := &term{f: f, cmd: cmd}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
	})
	return tm
}

func (tm *term) String() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

func (tm *term) waitFor(t *testing.T, what, s string) {
	t.Helper()
	if err := testutil.WaitFor(30*time.Second, func() bool { return strings.Contains(tm.String(), s) }); err != nil {
		t.Fatalf("%s: %q never appeared:\n%q", what, s, tm.String())
	}
}

// TestIntegrationGuideConsoles: chapter 5 — con1 on a pts attached with
// screen, ssl0 on a TCP port reached with telnet, mconsole config.
func TestIntegrationGuideConsoles(t *testing.T) {
	requireLinux(t)
	testutil.Peer(t, "screen", "screen")
	testutil.Peer(t, "telnet", "telnet")
	if _, err := os.Stat("/usr/lib/uml/port-helper"); err != nil {
		testutil.Skip(t, "/usr/lib/uml/port-helper not installed (uml-utilities)")
	}
	s := newSession(t)
	tdir, label := harness.TelnetdDir(t)
	t.Logf("in.telnetd: %s", label)
	for i, kv := range s.env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			s.env[i] = "PATH=" + tdir + ":" + p
		}
	}
	port := harness.FreeTCPPort(t)
	s.subst["9000"] = fmt.Sprint(port)
	s.run("boot-mkrootfs")
	g := s.start("cons-boot")
	s.waitPrompt(g, 1)
	s.typeIn(g, "cons-inittab")
	if err := g.WaitOutput("Virtual console 1 assigned device '/dev/pts/", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Virtual console 1 assigned device '(/dev/pts/\d+)'`).FindStringSubmatch(g.Output())
	if m == nil {
		t.Fatalf("no announcement:\n%s", g.Output())
	}
	if out := s.run("cons-config"); out != "OK pts:"+m[1]+"\n" {
		t.Errorf("cons-config: %q; want OK pts:%s", out, m[1])
	}
	s.subst["/dev/pts/3"] = m[1]

	scr := s.startTerm("cons-screen")
	time.Sleep(time.Second) // screen draws its window first
	io.WriteString(scr.f, "echo SCREEN-$(( 6 * 7 ))-$(tty)\r")
	scr.waitFor(t, "cons-screen", "SCREEN-42-/dev/tty1")
	io.WriteString(scr.f, "\x01k")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(scr.f, "y")

	// telnet runs the guide's telnet block, types line into the guest's
	// shell and waits for want.
	telnet := func(what, line, want string) *term {
		tn := s.startTerm("cons-telnet")
		tn.waitFor(t, what, "Connected to localhost")
		time.Sleep(500 * time.Millisecond)
		io.WriteString(tn.f, line)
		tn.waitFor(t, what, want)
		return tn
	}
	tn := telnet("cons-telnet", "echo TELNET-$(( 6 * 7 ))-$(tty)\r", "TELNET-42-/dev/ttyS0")
	io.WriteString(tn.f, "\x1d")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(tn.f, "quit\r")
	// Leaving hung the line up; init's new shell serves the next telnet.
	telnet("cons-telnet again", "\recho AGAIN-$(( 6 * 7 ))\r", "AGAIN-42")

	want(t, "cons-halt", s.run("cons-halt"), "OK ")
	if code, err := g.Wait(60 * time.Second); err != nil || code != 0 {
		t.Errorf("linux after halt: exit %d, %v; want 0", code, err)
	}
}
