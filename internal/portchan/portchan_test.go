package portchan

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// roleEnv makes the test binary act as a fake in.telnetd or terminal
// emulator: the real programs' process shape (a pty whose slave is
// port-helper's stdin and controlling terminal, fd 3 kept for telnetd) with
// the pty master relayed to the TCP connection (telnetd) or to the unix
// socket in relayEnv (xterm), and no telnet protocol.
const (
	roleEnv  = "PORTCHAN_TEST_ROLE"
	relayEnv = "PORTCHAN_TEST_RELAY"
	argvEnv  = "PORTCHAN_TEST_ARGV"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "telnetd":
		os.Exit(fakeTelnetd(os.Args[1:]))
	case "xterm":
		os.Exit(fakeXterm(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeTelnetd(args []string) int {
	if len(args) != 2 || args[0] != "-L" {
		return 2
	}
	cmd := exec.Command(args[1], "-h", "localhost", "-p") // as telnetd-ssl runs it
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "fd3")}
	ptm, err := pty.Start(cmd)
	if err != nil {
		return 2
	}
	os.NewFile(3, "fd3").Close()
	go io.Copy(ptm, os.Stdin)
	go io.Copy(os.Stdout, ptm)
	cmd.Wait()
	return 0
}

func fakeXterm(args []string) int {
	os.WriteFile(os.Getenv(argvEnv), []byte(strings.Join(args, "\n")), 0o644)
	relay, err := net.Dial("unix", os.Getenv(relayEnv))
	if err != nil {
		return 2
	}
	cmd := exec.Command(args[3], args[4:]...)
	ptm, err := pty.Start(cmd)
	if err != nil {
		return 2
	}
	go io.Copy(ptm, relay)
	go io.Copy(relay, ptm)
	cmd.Wait()
	return 0
}

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// portHelper builds our cmd/port-helper once.
func portHelper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portchan-test-")
		if err != nil {
			helperErr = err
			return
		}
		helperBin = filepath.Join(dir, "port-helper")
		out, err := exec.Command("go", "build", "-o", helperBin, "github.com/umlkit/umlkit/cmd/port-helper").CombinedOutput()
		if err != nil {
			helperErr = errors.New(string(out))
		}
	})
	if helperErr != nil {
		t.Fatalf("build port-helper: %v", helperErr)
	}
	return helperBin
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func listen(t *testing.T, logs *lines) *Port {
	t.Helper()
	p, err := ListenPort(PortConfig{
		Host: "127.0.0.1", Telnetd: self(t), Helper: portHelper(t),
		Env: append(os.Environ(), roleEnv+"=telnetd"), Log: logs.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) { l.mu.Lock(); l.l = append(l.l, s); l.mu.Unlock() }
func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

// readUntil reads r until the data contains want.
func readUntil(t *testing.T, c net.Conn, want string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte(want)) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read %q so far, waiting for %q: %v", got, want, err)
		}
	}
	return string(got)
}

func readTerminal(t *testing.T, f *os.File, want string) {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte(want)) {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("terminal read %q so far, waiting for %q: %v", got, want, err)
		}
	}
}

func waitEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("connection not closed: %v", err)
	}
}

func TestPortPendingConnection(t *testing.T) {
	testutil.LeakCheck(t)
	var logs lines
	p := listen(t, &logs)
	c, err := net.Dial("tcp4", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readUntil(t, c, "\x00"); got != NoWaiterMessage {
		t.Errorf("pending connection got %q; want %q", got, NoWaiterMessage)
	}
	testutil.WaitFor(5*time.Second, func() bool { return len(logs.get()) > 0 })
	if got := logs.get(); len(got) != 1 || got[0] != NoWaiterLog {
		t.Errorf("log = %q; want [%q]", got, NoWaiterLog)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	term, err := p.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if term.HelperPID <= 0 || term.Proc == nil {
		t.Errorf("terminal HelperPID %d, Proc %v; want both set", term.HelperPID, term.Proc)
	}
	if err := term.MakeRaw(); err != nil {
		t.Fatal(err)
	}
	term.File.Write([]byte("from-guest\n"))
	readUntil(t, c, "from-guest\n") // raw: no \r added
	c.Write([]byte("from-client"))
	readTerminal(t, term.File, "from-client")

	helper := term.HelperPID
	term.Close()
	waitEOF(t, c)
	if err := testutil.WaitFor(5*time.Second, func() bool { return syscall.Kill(helper, 0) != nil }); err != nil {
		t.Errorf("port-helper %d still alive after Terminal.Close", helper)
	}
}

func TestPortWaitingLine(t *testing.T) {
	testutil.LeakCheck(t)
	var logs lines
	p := listen(t, &logs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *Terminal, 1)
	go func() {
		term, err := p.Accept(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- term
	}()
	testutil.WaitFor(5*time.Second, func() bool { return p.waiters.Load() == 1 })
	c, err := net.Dial("tcp4", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	term := <-got
	if term == nil {
		t.FailNow()
	}
	defer term.Close()
	term.File.Write([]byte("first"))
	if s := readUntil(t, c, "first"); s != "first" {
		t.Errorf("waited-for connection got %q first; want just the terminal's output", s)
	}
	if l := logs.get(); len(l) != 0 {
		t.Errorf("log = %q; want nothing", l)
	}
}

func TestPortCloseKillsPending(t *testing.T) {
	testutil.LeakCheck(t)
	var logs lines
	p := listen(t, &logs)
	c, err := net.Dial("tcp4", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readUntil(t, c, "\x00")
	time.Sleep(200 * time.Millisecond) // let the helper send its terminal
	p.Close()
	waitEOF(t, c)
	if _, err := p.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v; want ErrClosed", err)
	}
}

func TestPortServe(t *testing.T) {
	testutil.LeakCheck(t)
	p := listen(t, &lines{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	got := make(chan *Terminal, 2)
	go func() { done <- p.Serve(ctx, func(term *Terminal) { got <- term }) }()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp4", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case term := <-got:
			term.Close()
		case <-time.After(20 * time.Second):
			t.Fatalf("Serve handed over no terminal for connection %d", i)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v; want context.Canceled", err)
	}
}

func TestXterm(t *testing.T) {
	testutil.LeakCheck(t)
	dir := t.TempDir()
	relayPath := filepath.Join(dir, "relay")
	rl, err := net.Listen("unix", relayPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	argvFile := filepath.Join(dir, "argv")
	cfg := XtermConfig{
		Emulator: self(t), Title: Title(false, 1, "t9"), Helper: portHelper(t), Dir: dir,
		Env: append(os.Environ(), "DISPLAY=:99", roleEnv+"=xterm", relayEnv+"="+relayPath, argvEnv+"="+argvFile),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	term, err := OpenXterm(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	relay, err := rl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	term.File.Write([]byte("on-the-pty"))
	readUntil(t, relay, "on-the-pty")

	argv, _ := os.ReadFile(argvFile)
	a := strings.Split(string(argv), "\n")
	if len(a) != 6 || a[0] != "-T" || a[1] != "Virtual Console #1 (t9)" || a[2] != "-e" || a[3] != cfg.Helper ||
		a[4] != "-uml-socket" || !strings.HasPrefix(a[5], filepath.Join(dir, "xterm-pipe")) || len(filepath.Base(a[5])) != len("xterm-pipe")+6 {
		t.Errorf("emulator argv = %q; want -T, title, -e, helper, -uml-socket, %s/xterm-pipeXXXXXX", a, dir)
	}
	if _, err := os.Stat(a[len(a)-1]); !os.IsNotExist(err) {
		t.Errorf("socket %s not removed after the hand-over: %v", a[len(a)-1], err)
	}
	term.Close()
	relay.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, relay) // the emulator was killed: relay closes
}

func TestXtermErrors(t *testing.T) {
	if _, err := OpenXterm(context.Background(), XtermConfig{Env: []string{"PATH=/bin"}}); err != ErrNoDisplay || err.Error() != "xterm_open: $DISPLAY not set." {
		t.Errorf("OpenXterm without DISPLAY = %v; want ErrNoDisplay", err)
	}
	// An emulator that never starts the helper: only ctx ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := OpenXterm(ctx, XtermConfig{Emulator: "/bin/true", Dir: t.TempDir(), Env: []string{"DISPLAY=:1"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("OpenXterm with a silent emulator = %v; want DeadlineExceeded", err)
	}
}

func TestHelperPathAndError(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if p, fromEnv := HelperPath(getenv); p != "/usr/lib//uml/port-helper" || fromEnv {
		t.Errorf("HelperPath() = %q, %v; want the default", p, fromEnv)
	}
	env[HelperEnv] = "/opt/ph"
	if p, fromEnv := HelperPath(getenv); p != "/opt/ph" || !fromEnv {
		t.Errorf("HelperPath() = %q, %v; want /opt/ph, true", p, fromEnv)
	}
	err := CheckHelper("/nonexistent/port-helper", false)
	want := "port_connection : error accessing port-helper executable at /nonexistent/port-helper: No such file or directory"
	var he *HelperError
	if !errors.As(err, &he) || err.Error() != want {
		t.Errorf("CheckHelper = %v; want %q", err, want)
	}
}

func TestTitle(t *testing.T) {
	for _, tt := range []struct {
		serial bool
		n      int
		umid   string
		want   string
	}{{false, 1, "t9", "Virtual Console #1 (t9)"}, {true, 3, "", "Serial Line #3"}} {
		if got := Title(tt.serial, tt.n, tt.umid); got != tt.want {
			t.Errorf("Title(%v, %d, %q) = %q; want %q", tt.serial, tt.n, tt.umid, got, tt.want)
		}
	}
}

// TestIntegrationPortRealTelnetd: ListenPort with Debian's telnetd (see
// harness.TelnetdDir) and our port-helper on loopback, no kernel: a telnet
// client gets the no-waiter text, the terminal arrives through Accept, and
// data flows both ways; Close ends the telnet session.
func TestIntegrationPortRealTelnetd(t *testing.T) {
	testutil.RequireRoot(t)
	dir, label := harness.TelnetdDir(t)
	t.Logf("in.telnetd: %s", label)
	var logs lines
	p, err := ListenPort(PortConfig{Host: "127.0.0.1", Telnetd: filepath.Join(dir, "in.telnetd"), Helper: portHelper(t), Log: logs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tn := harness.DialTelnet(t, p.Addr().String())
	if err := tn.WaitFor(NoWaiterMessage, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tn.Output(), NoWaiterMessage) {
		t.Errorf("telnet output %q does not start with the no-waiter text", tn.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	term, err := p.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := term.MakeRaw(); err != nil {
		t.Fatal(err)
	}
	term.File.Write([]byte("hello from the line\r\n"))
	if err := tn.WaitFor("hello from the line\r\n", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	tn.Send("typed-by-client\r")
	readTerminal(t, term.File, "typed-by-client")
	term.Close()
	select {
	case <-tn.Closed():
	case <-time.After(20 * time.Second):
		t.Error("telnet connection still open after Terminal.Close")
	}
}

// TestPortGivenListener: a listener bound elsewhere (linux binds in the
// host's network namespace) is served as is, and Close closes it.
func TestPortGivenListener(t *testing.T) {
	testutil.LeakCheck(t)
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var logs lines
	p, err := ListenPort(PortConfig{Listener: ln, Telnetd: self(t), Helper: portHelper(t),
		Env: append(os.Environ(), roleEnv+"=telnetd"), Log: logs.add})
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr = %v; want the given listener's %v", p.Addr(), ln.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *Terminal, 1)
	go func() {
		term, _ := p.Accept(ctx)
		got <- term
	}()
	testutil.WaitFor(5*time.Second, func() bool { return p.waiters.Load() == 1 })
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	term := <-got
	if term == nil {
		t.Fatal("no terminal through the given listener")
	}
	term.Close()
	p.Close()
	if _, err := ln.Accept(); err == nil {
		t.Error("the given listener is still open after Close")
	}
}
