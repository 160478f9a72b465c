package harness

// Helpers for the port-helper interop tests (tests/e2e/porthelper_test.go):
// a minimal telnet client, the in.telnetd the kernel runs, a stand-in
// terminal emulator and a child-subreaper watch for leftover processes.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

// FreeTCPPort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Telnet option negotiation bytes (RFC 854).
const (
	telIAC  = 255
	telDONT = 254
	telDO   = 253
	telWONT = 252
	telWILL = 251
	telSB   = 250
	telSE   = 240
)

// Telnet is a minimal telnet client: it refuses every option the server
// offers or asks for (DO -> WONT, WILL -> DONT), skips subnegotiations and
// collects the data bytes.
type Telnet struct {
	conn net.Conn
	mu   sync.Mutex
	data bytes.Buffer // guarded by mu
	done chan struct{}
}

// DialTelnet connects to addr and starts reading.
func DialTelnet(t testing.TB, addr string) *Telnet {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("telnet %s: %v", addr, err)
	}
	tn := &Telnet{conn: c, done: make(chan struct{})}
	go tn.read()
	t.Cleanup(func() { c.Close(); <-tn.done })
	return tn
}

func (tn *Telnet) read() {
	defer close(tn.done)
	buf := make([]byte, 4096)
	var pending []byte // an IAC sequence split across reads
	for {
		n, err := tn.conn.Read(buf)
		if n > 0 {
			pending = tn.parse(append(pending, buf[:n]...))
		}
		if err != nil {
			return
		}
	}
}

// parse consumes b and returns an unfinished trailing command, if any.
func (tn *Telnet) parse(b []byte) []byte {
	var out, reply []byte
	for i := 0; i < len(b); i++ {
		if b[i] != telIAC {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return tn.flush(out, reply, b[i:])
		}
		switch cmd := b[i+1]; cmd {
		case telIAC:
			out = append(out, telIAC)
			i++
		case telDO, telDONT, telWILL, telWONT:
			if i+2 >= len(b) {
				return tn.flush(out, reply, b[i:])
			}
			opt := b[i+2]
			switch cmd {
			case telDO:
				reply = append(reply, telIAC, telWONT, opt)
			case telWILL:
				reply = append(reply, telIAC, telDONT, opt)
			}
			i += 2
		case telSB:
			end := bytes.Index(b[i:], []byte{telIAC, telSE})
			if end < 0 {
				return tn.flush(out, reply, b[i:])
			}
			i += end + 1
		default:
			i++
		}
	}
	return tn.flush(out, reply, nil)
}

func (tn *Telnet) flush(out, reply, rest []byte) []byte {
	tn.mu.Lock()
	tn.data.Write(out)
	tn.mu.Unlock()
	if len(reply) > 0 {
		tn.conn.Write(reply)
	}
	return append([]byte(nil), rest...)
}

// Send writes s (a line should end in "\r").
func (tn *Telnet) Send(s string) error {
	_, err := tn.conn.Write([]byte(s))
	return err
}

// Output returns the data received so far, negotiation removed.
func (tn *Telnet) Output() string {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.data.String()
}

// LocalAddr is the client's address.
func (tn *Telnet) LocalAddr() net.Addr { return tn.conn.LocalAddr() }

// Closed reports whether the server closed the connection.
func (tn *Telnet) Closed() <-chan struct{} { return tn.done }

// WaitFor waits until the output contains s.
func (tn *Telnet) WaitFor(s string, d time.Duration) error {
	if err := testutil.WaitFor(d, func() bool { return strings.Contains(tn.Output(), s) }); err != nil {
		return fmt.Errorf("telnet: waiting %v for %q (got %q): %w", d, s, tn.Output(), err)
	}
	return nil
}

// InTelnetdEnv names an in.telnetd to use instead of the one on PATH (e.g.
// one extracted from telnetd-ssl's .deb).
const InTelnetdEnv = "UMLKIT_IN_TELNETD"

// TelnetdDir returns a directory to put first on the kernel's PATH so that
// its "in.telnetd -L HELPER" finds a telnetd that supports -L, and a label
// saying which one. Debian's in.telnetd with -L comes only from telnetd-ssl
// (spec channels.md §3); with just inetutils-telnetd installed, a two-line
// shim runs "/usr/sbin/telnetd -h -E HELPER" (inetutils' way of naming the
// login program; it keeps fd 3 for the helper).
func TelnetdDir(t testing.TB) (dir, label string) {
	t.Helper()
	// linux run as root runs in.telnetd as the machine's unprivileged id
	// block (docs/linux.md, "User ids"): the directory must be reachable
	// by every user, unlike t.TempDir()'s.
	dir, err := os.MkdirTemp("", "umlkit-telnetd-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	real := os.Getenv(InTelnetdEnv)
	if real == "" {
		if p, err := exec.LookPath("in.telnetd"); err == nil {
			real = p
		} else if _, err := os.Stat("/usr/sbin/in.telnetd"); err == nil {
			real = "/usr/sbin/in.telnetd"
		}
	}
	if real != "" {
		if err := os.Symlink(real, filepath.Join(dir, "in.telnetd")); err != nil {
			t.Fatal(err)
		}
		return dir, real
	}
	inetutils := "/usr/sbin/telnetd"
	if _, err := os.Stat(inetutils); err != nil {
		testutil.Skip(t, "no telnetd: apt-get install telnetd-ssl (in.telnetd -L) or inetutils-telnetd")
	}
	shim := "#!/bin/sh\n# in.telnetd -L HELPER, as UML runs it, on inetutils telnetd\n" +
		"if [ \"$1\" = -L ]; then exec " + inetutils + " -h -E \"$2\"; fi\nexec " + inetutils + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "in.telnetd"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, inetutils + " -E (shim)"
}

// Proc is a process found by Children.
type Proc struct {
	Pid    int
	State  string
	Cmd    string // /proc/PID/cmdline, NULs as spaces
	Zombie bool
}

func (p Proc) String() string { return fmt.Sprintf("%d %s [%s]", p.Pid, p.Cmd, p.State) }

// Subreaper makes the test process a child subreaper (PR_SET_CHILD_SUBREAPER)
// for the rest of the test, so processes orphaned by a kernel (its helpers)
// become our children and Children can find them. At cleanup every such
// child still alive is killed and reaped, and the attribute is cleared.
// Tests using it must not run in parallel with others.
//
// While the test runs, adopted zombies from another pid namespace (a
// guest's) are reaped as soon as they die — linux's own guard is reaped by
// the process that started it (internal/linux/host/hostguard.go), so this only
// matters for what a killed linux leaves behind: the kernel's teardown of that namespace
// (zap_pid_ns_processes, after the guest's init exits) waits until every
// process born in it has been reaped, parent outside or not, so the guest
// would never finish halting while we, its adoptive parent, hold the zombie.
// Children of our own pid namespace (our exec.Cmds among them) are left to
// their waiters.
func Subreaper(t testing.TB, keep ...*Guest) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("prctl PR_SET_CHILD_SUBREAPER: %v", err)
	}
	stopReaper := reapForeignZombies()
	t.Cleanup(func() {
		stopReaper()
		// Killing an orphan orphans its children in turn (they come to us
		// while we are still the subreaper): repeat until none is left.
		for round := 0; round < 20; round++ {
			kids := Children(t)
			if len(kids) == 0 {
				break
			}
			for _, p := range kids {
				syscall.Kill(p.Pid, syscall.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(p.Pid, &ws, 0, nil)
			}
			time.Sleep(50 * time.Millisecond)
		}
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	})
}

// reapForeignZombies reaps, on every SIGCHLD (and every second, signals
// being coalesced), the zombie children of the test process whose pid
// namespace is not the test's own; the returned func stops it.
func reapForeignZombies() (stop func()) {
	own, _ := os.Readlink("/proc/self/ns/pid")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, pid := range zombieChildren() {
				if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && ns != own {
					var ws unix.WaitStatus
					unix.Wait4(pid, &ws, unix.WNOHANG, nil)
				}
			}
			select {
			case <-done:
				return
			case <-sig:
			case <-tick.C:
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		<-finished
	}
}

// ProcStat is what a /proc/PID/stat says of a process's state and parent.
type ProcStat struct {
	Pid, PPid int
	State     string
}

// ProcStats reads /proc/PID/stat of every process.
func ProcStats() []ProcStat {
	ents, _ := os.ReadDir("/proc")
	var out []ProcStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, ProcStat{Pid: pid, PPid: ppid, State: f[0]})
	}
	return out
}

// zombieChildren lists the zombie children of the test process.
func zombieChildren() []int {
	self := os.Getpid()
	var out []int
	for _, p := range ProcStats() {
		if p.State == "Z" && p.PPid == self {
			out = append(out, p.Pid)
		}
	}
	return out
}

// Children lists the children of the test process other than the ones in
// skip (pids), zombies included. Zombies that are not in skip are reaped
// after being listed.
func Children(t testing.TB, skip ...int) []Proc {
	t.Helper()
	self := os.Getpid()
	var out []Proc
next:
	for _, st := range ProcStats() {
		for _, s := range skip {
			if st.Pid == s {
				continue next
			}
		}
		if st.PPid != self {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid))
		out = append(out, Proc{Pid: st.Pid, State: st.State, Cmd: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")), Zombie: st.State == "Z"})
	}
	return out
}

// Orphans waits up to d for the test process to have no live children
// besides skip and returns what is still alive then (zombies are reaped
// and not counted).
func Orphans(t testing.TB, d time.Duration, skip ...int) []Proc {
	t.Helper()
	var live []Proc
	testutil.WaitFor(d, func() bool {
		live = live[:0]
		for _, p := range Children(t, skip...) {
			if p.Zombie {
				var ws unix.WaitStatus
				unix.Wait4(p.Pid, &ws, unix.WNOHANG, nil)
				continue
			}
			live = append(live, p)
		}
		return len(live) == 0
	})
	return live
}

// FakeXtermEnv, when set to a unix stream socket path in a process's
// environment, makes FakeXtermMain act as the terminal emulator.
const (
	FakeXtermEnv       = "UMLKIT_FAKE_XTERM_RELAY"
	FakeXtermLogEnv    = "UMLKIT_FAKE_XTERM_ARGV" // file receiving the argv, one per line
	FakeXtermHelperEnv = "UMLKIT_FAKE_XTERM_HELPER"
)

// FakeXtermMain is a stand-in terminal emulator, for a test binary's init
// hook: called as "fake-xterm -T TITLE -e CMD ARGS...", it writes its argv to
// $UMLKIT_FAKE_XTERM_ARGV, runs CMD under a new pty (its controlling
// terminal, like xterm) and relays the pty master to the unix stream socket
// $UMLKIT_FAKE_XTERM_RELAY both ways, exiting when CMD exits or the relay
// closes. When $UMLKIT_FAKE_XTERM_HELPER is set, a CMD ending in
// "/uml/port-helper" is replaced by it (the real kernel names
// /usr/lib//uml/port-helper, with no override). It returns the exit status.
func FakeXtermMain(args []string) int {
	if p := os.Getenv(FakeXtermLogEnv); p != "" {
		os.WriteFile(p, []byte(strings.Join(args, "\n")+"\n"), 0o644)
	}
	var cmd []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-e" {
			cmd = args[i+1:]
			break
		}
	}
	if len(cmd) == 0 {
		fmt.Fprintln(os.Stderr, "fake-xterm: no -e command")
		return 2
	}
	if h := os.Getenv(FakeXtermHelperEnv); h != "" && strings.HasSuffix(cmd[0], "/uml/port-helper") {
		cmd[0] = h
	}
	relay, err := net.Dial("unix", os.Getenv(FakeXtermEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake-xterm: relay: %v\n", err)
		return 2
	}
	defer relay.Close()
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Env = os.Environ()
	ptm, err := pty.Start(c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake-xterm: start %s: %v\n", cmd[0], err)
		return 2
	}
	defer ptm.Close()
	go io.Copy(ptm, relay)
	go func() { io.Copy(relay, ptm); relay.Close() }()
	c.Wait()
	return 0
}

// FakeXterm is one test's stand-in emulator session: put Env in the
// kernel's environment (with "xterm=<test binary>,-T,-e" on its command
// line), then Accept the terminal the emulator relays and read its Argv.
type FakeXterm struct {
	Env      []string
	rl       *net.UnixListener
	argvFile string
}

// NewFakeXterm listens for the emulator's relay in a temporary directory.
func NewFakeXterm(t testing.TB) *FakeXterm {
	t.Helper()
	dir := t.TempDir()
	relay := filepath.Join(dir, "relay")
	rl, err := net.ListenUnix("unix", &net.UnixAddr{Name: relay, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	x := &FakeXterm{rl: rl, argvFile: filepath.Join(dir, "argv")}
	x.Env = []string{"DISPLAY=:99", FakeXtermEnv + "=" + relay, FakeXtermLogEnv + "=" + x.argvFile}
	return x
}

// Accept waits up to 30 s for the emulator and returns its terminal.
func (x *FakeXterm) Accept(t testing.TB) net.Conn {
	t.Helper()
	x.rl.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := x.rl.Accept()
	if err != nil {
		t.Fatalf("the emulator never connected its relay: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// CheckArgv fails t unless the emulator was run as UML runs it for
// virtual console 1 of the machine umid.
func (x *FakeXterm) CheckArgv(t testing.TB, umid string) {
	t.Helper()
	b, _ := os.ReadFile(x.argvFile)
	a := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	title := "Virtual Console #1 (" + umid + ")"
	if len(a) != 6 || a[0] != "-T" || a[1] != title || a[2] != "-e" ||
		a[3] != "/usr/lib//uml/port-helper" || a[4] != "-uml-socket" || !strings.HasPrefix(a[5], "/tmp/xterm-pipe") {
		t.Errorf("emulator argv = %q; want -T, %s, -e, /usr/lib//uml/port-helper, -uml-socket, /tmp/xterm-pipeXXXXXX", a, title)
	}
}
