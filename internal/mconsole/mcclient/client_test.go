package mcclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mcclient"
	"github.com/umlkit/umlkit/internal/mconsole/mconsoletest"
)

func TestCandidates(t *testing.T) {
	for _, tt := range []struct {
		l    mcclient.Lookup
		name string
		want []string
	}{
		{mcclient.Lookup{Home: "/h"}, "mc", []string{"/h/.uml/mc/mconsole", "/tmp/uml/mc/mconsole", "mc"}},
		{mcclient.Lookup{}, "mc", []string{"/tmp/uml/mc/mconsole", "mc"}},
		{mcclient.Lookup{Home: "/h", UMLDir: "/u/"}, "mc", []string{"/u/mc/mconsole", "/h/.uml/mc/mconsole", "/tmp/uml/mc/mconsole", "mc"}},
		{mcclient.Lookup{Home: "/h"}, "/h/.uml/mc/mconsole", []string{"/tmp/uml//h/.uml/mc/mconsole/mconsole", "/h/.uml/mc/mconsole"}},
		{mcclient.Lookup{Home: "/h"}, "/tmp/uml/x", []string{"/h/.uml//tmp/uml/x/mconsole", "/tmp/uml/x"}},
	} {
		if got := tt.l.Candidates(tt.name); !cmp.Equal(got, tt.want) {
			t.Errorf("%+v.Candidates(%q) = %q; want %q", tt.l, tt.name, got, tt.want)
		}
	}
}

// env makes a HOME with .uml/<umid>/mconsole served by the fake kernel.
func env(t *testing.T, umid string) (home string, f *mconsoletest.Fake) {
	home = t.TempDir()
	dir := filepath.Join(home, ".uml", umid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return home, mconsoletest.Start(t, dir)
}

func run(t *testing.T, home, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString(stdin); w.Close() }()
	defer r.Close()
	var o, e bytes.Buffer
	getenv := func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}
	code = mcclient.Run(context.Background(), args, mcclient.Stdio{Stdin: r, Stdout: &o, Stderr: &e}, getenv)
	return o.String(), e.String(), code
}

func TestOneShot(t *testing.T) {
	home, f := env(t, "mc")
	cwd, _ := syscall.Getwd()
	for _, tt := range []struct {
		args   []string
		stdout string
		code   int
	}{
		{[]string{"mc", "version"}, "OK " + mconsoletest.Version + "\n", 0},
		{[]string{"mc", "log", "hello"}, "OK \nOK \n", 0},
		{[]string{"mc", "remove", "ubd5"}, "ERR Device doesn't exist\n", 237},
		{[]string{"mc", "bogus"}, "ERR Unknown command\n", 1},
		{[]string{"mc", "help"}, "OK " + mconsole.KernelHelp() + "\n" + mcclient.LocalHelp, 0},
		{[]string{"mc", "mconsole-version"}, "uml_mconsole client version 2\n", 0},
		{[]string{"mc", "int"}, "Cannot determine the PID of your UML session, not sending signal.\n", 0},
		{[]string{"mc", "umlfs", "x"}, "ERR Failed to parse file descriptor\n", 234},
		{[]string{"mc", "config", "ubd1=a,b"}, "OK config ubd1=" + cwd + "/a," + cwd + "/b\n", 0},
		{[]string{"mc", "proc", "meminfo"}, "OK \n" + mconsoletest.ProcText + "\n", 0},
		{[]string{"mc", "sysrq", "m"}, "OK sysrq: Show Memory\nMem-Info:\n\n", 0},
		{[]string{"mc", "quit"}, "", 0},
		{[]string{"--timeout", "3s", "--", "mc", "stack"}, "ERR Please specify a pid\n", 1},
		{[]string{filepath.Join(f.Dir, "mconsole"), "version"}, "OK " + mconsoletest.Version + "\n", 0},
		{[]string{"nosuch", "version"}, "", 1},
	} {
		out, errOut, code := run(t, home, "", tt.args...)
		if out != tt.stdout || code != tt.code {
			t.Errorf("uml_mconsole %q = %q, exit %d; want %q, exit %d (stderr %q)", tt.args, out, code, tt.stdout, tt.code, errOut)
		}
	}
	reqs := f.Requests()
	if !cmp.Equal(reqs[1:3], []string{"log hello", "log \n"}) {
		t.Errorf("log hello sent %q; want [\"log hello\" \"log \\n\"]", reqs[1:3])
	}
}

func TestWarningsOnlyWhenNothingResolves(t *testing.T) {
	home, f := env(t, "mc")
	_, errOut, _ := run(t, home, "", f.Path(), "version")
	if errOut != "" {
		t.Errorf("valid path printed %q on stderr; want nothing", errOut)
	}
	_, errOut, _ = run(t, home, "", "nosuch", "version")
	want := "Warning: couldn't stat file: " + home + "/.uml/nosuch/mconsole - No such file or directory\n"
	if !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, `no UML instance "nosuch"`) {
		t.Errorf("stderr for a missing umid = %q; want the real warnings then a clear line", errOut)
	}
}

func TestLogChunks(t *testing.T) {
	home, f := env(t, "mc")
	long := strings.Repeat("x", 600)
	out, _, code := run(t, home, "", "mc", "log", long)
	if out != "OK \nOK \nOK \n" || code != 0 {
		t.Errorf("log of 600 chars = %q, %d", out, code)
	}
	file := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(file, []byte("line1\nline2\n"), 0o644)
	run(t, home, "", "mc", "log", "-f", file)
	want := []string{"log " + long[:506], "log " + long[506:], "log \n", "log line1\nline2\n"}
	if got := f.Requests(); !cmp.Equal(got, want) {
		t.Errorf("requests = %q; want %q", got, want)
	}
	_, errOut, code := run(t, home, "", "mc", "log", "-f", "/nonexistent/x")
	if code != 1 || errOut != "opening file: No such file or directory\n" {
		t.Errorf("log -f missing = %q, %d", errOut, code)
	}
}

func TestInteractivePiped(t *testing.T) {
	home, f := env(t, "mc")
	in := "version\n\nswitch " + f.Path() + "\nint\nquit\nversion\n"
	out, _, code := run(t, home, in, "mc")
	want := "(mc) version\nOK " + mconsoletest.Version + "\n" +
		"(mc) \nERR Unknown command\n" +
		"(mc) switch " + f.Path() + "\nSwitched to '" + f.Path() + "'\n" +
		"(" + f.Path()[:11] + ") int\nCannot determine the PID of your UML session, not sending signal.\n" +
		"(" + f.Path()[:11] + ") quit\n"
	if out != want || code != 0 {
		t.Errorf("interactive = %q, %d\nwant %q", out, code, want)
	}
	out, _, code = run(t, home, "", "mc")
	if out != "(mc) \n" || code != 0 {
		t.Errorf("interactive at EOF = %q, %d; want prompt and newline", out, code)
	}
	out, _, _ = run(t, home, "version", "nosuch")
	if !strings.HasPrefix(out, "([None]) version\n") {
		t.Errorf("unresolved prompt = %q; want ([None])", out)
	}
}

func TestArgs(t *testing.T) {
	for _, tt := range []struct {
		args        []string
		out, errOut string
		code        int
	}{
		{nil, "", mcclient.Usage, 1},
		{[]string{"--help"}, mcclient.Help, "", 0},
		{[]string{"--bogus", "mc"}, "", "uml_mconsole: unknown option --bogus (try --help)\n", 1},
		{[]string{"--timeout", "soon", "mc"}, "", "uml_mconsole: bad --timeout \"soon\": want a duration like 10s or a number of seconds\n", 1},
		{[]string{"--uml-dir"}, "", "uml_mconsole: option --uml-dir needs a value\n", 1},
	} {
		out, errOut, code := run(t, t.TempDir(), "", tt.args...)
		if out != tt.out || errOut != tt.errOut || code != tt.code {
			t.Errorf("uml_mconsole %q = %q, %q, %d; want %q, %q, %d", tt.args, out, errOut, code, tt.out, tt.errOut, tt.code)
		}
	}
}

func TestListAndPid(t *testing.T) {
	home, f := env(t, "live")
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	live := strconv.Itoa(sleep.Process.Pid)
	os.WriteFile(filepath.Join(f.Dir, "pid"), []byte(live+"\n"), 0o644)
	stale := filepath.Join(home, ".uml", "old")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "pid"), []byte("999999999\n"), 0o644)
	umlDir := t.TempDir()
	os.MkdirAll(umlDir+"/nopid", 0o755)
	mconsoletest.Start(t, umlDir+"/nopid")
	out, _, code := run(t, home, "", "--uml-dir", umlDir, "--list")
	// The live machine's memory is its process tree's PSS (a sleep: some
	// hundreds of KiB); the others have none to show.
	want := regexp.MustCompile(`^UMID +PID +STATE +MEMORY +SOCKET\n` +
		`nopid +- +alive +- +` + regexp.QuoteMeta(umlDir+"/nopid/mconsole") + `\n` +
		`live +` + live + ` +alive +[0-9.]+[KM] +` + regexp.QuoteMeta(f.Path()) + `\n` +
		`old +999999999 +stale +- +-\n$`)
	if !want.MatchString(out) || code != 0 {
		t.Errorf("--list = %q\nwant %s", out, want)
	}
	out, _, code = run(t, home, "", "--uml-dir", umlDir, "--list", "--json")
	var rows []struct {
		Umid     string `json:"umid"`
		Pid      int    `json:"pid"`
		State    string `json:"state"`
		PssBytes int64  `json:"pss_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 || len(rows) != 3 {
		t.Fatalf("--list --json = %q (%v)", out, err)
	}
	if rows[1].Umid != "live" || rows[1].Pid != sleep.Process.Pid || rows[1].PssBytes <= 0 || rows[2].State != "stale" || rows[2].PssBytes != 0 {
		t.Errorf("--list --json rows %+v", rows)
	}
}

func TestDialName(t *testing.T) {
	home, _ := env(t, "mc")
	c, err := mcclient.DialName("mc", mcclient.Lookup{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Send(ctx, "version")
	if err != nil || r.Text != mconsoletest.Version {
		t.Errorf("Send(version) = %+v, %v", r, err)
	}
	if _, err := mcclient.DialName("nosuch", mcclient.Lookup{Home: home}); !errors.Is(err, mcclient.ErrNotFound) {
		t.Errorf("DialName(nosuch) = %v; want ErrNotFound", err)
	}
}

// TestEcho holds outputs of Debian's uml_mconsole (GNU readline) echoing a
// piped line after the prompt "(fk) ".
func TestEcho(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	right := func(n int) string { return strings.Repeat("\x1b[C", n) }
	alnum := "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
	for _, tt := range []struct {
		line, term string
		cols       int
		want       string
	}{
		{x(73), "", 0, x(73) + "\n"},
		{x(74), "", 0, "\r<" + x(51) + "\n"},
		{x(200), "dumb", 0, "\r<" + x(51) + "\n"},
		{alnum, "", 0, "\r<" + alnum[29:] + "\n"},
		{x(53), "", 60, x(53) + "\n"},
		{x(54), "", 60, "\r<" + x(39) + "\n"},
		{x(95), "", 100, "\r<" + x(65) + "\n"},
		{x(35), "", 40, "\r<" + x(25) + "\n"},
		{x(45), "", 50, "\r<" + x(31) + "\n"},
		{x(74), "xterm", 0, x(74) + "\n"},
		{x(75), "xterm", 0, x(75) + " \r\x1b[A" + right(79) + "\x1b[Kx\n"},
		{x(76), "xterm", 0, x(76) + "\n"},
		{x(155), "vt100", 0, x(155) + " \r\x1b[A" + right(79) + "\x1b[Kx\n"},
		{x(235), "xterm", 0, x(235) + " \r\x1b[A" + right(79) + "\x1b[Kx\n"},
		{x(55), "xterm", 60, x(55) + " \r\x1b[A" + right(59) + "\x1b[Kx\n"},
	} {
		if got := mcclient.Echo("(fk) ", tt.line, tt.term, tt.cols); got != tt.want {
			t.Errorf("Echo(%d chars, TERM=%q, COLUMNS=%d) = %q; want %q", len(tt.line), tt.term, tt.cols, got, tt.want)
		}
	}
}
