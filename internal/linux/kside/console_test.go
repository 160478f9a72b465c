package kside

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/testutil"
	"golang.org/x/sys/unix"
)

// logFile is a kernel log sink.
func logFile(t *testing.T) (*os.File, func() string) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, func() string { b, _ := os.ReadFile(f.Name()); return string(b) }
}

// testConsoles sets up K's line layer for plan on the host's /dev/ptmx.
func testConsoles(t *testing.T, cp plan.Consoles, files map[string]*os.File) (*consoles, map[string]string, func() string) {
	t.Helper()
	out, log := logFile(t)
	k := &kernel{plan: &plan.Plan{}, out: out, files: files}
	cs := newConsoles(k, cp, files)
	if cs == nil {
		t.Fatal("newConsoles: nil")
	}
	k.cons = cs
	devices := map[string]string{}
	if err := cs.setup("", devices); err != nil {
		t.Fatal(err)
	}
	cs.start()
	t.Cleanup(cs.shutdown)
	return cs, devices, log
}

func readInto(f *os.File) *testutil.SyncBuffer {
	b := &testutil.SyncBuffer{}
	go func() {
		p := make([]byte, 4096)
		for {
			n, err := f.Read(p)
			b.Write(p[:n])
			if err != nil {
				return
			}
		}
	}()
	return b
}

// TestLineFDChannel: a guest open of tty1 (con1=fd:N) bridges the slave
// and host fd N both ways; closing it closes the line; config follows.
func TestLineFDChannel(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := os.NewFile(uintptr(fds[0]), "host")
	ours := os.NewFile(uintptr(fds[1]), "ours")
	defer host.Close()
	cs, devices, log := testConsoles(t, plan.Consoles{
		Lines: []plan.Line{{N: 1, Spec: "fd:7"}, {N: 2, Spec: "fd:x"}, {Serial: true, N: 0, Spec: "none"}, {Serial: true, N: 1, Spec: "pty"}},
		FDs:   []int{7},
	}, map[string]*os.File{"hostfd-7": ours})
	if devices["tty1"] == "" || devices["tty2"] != "" || devices["ttyS0"] != "" || devices["ttyS1"] == "" {
		t.Fatalf("devices = %v", devices)
	}
	for _, want := range []string{"fd_init : couldn't parse file descriptor 'x'\r\n", "setup_one_line failed for device 2 : failed to parse channel pair\r\n",
		"setup_one_line failed for device 0 : configured as 'none'\r\n"} {
		if !strings.Contains(log(), want) {
			t.Errorf("log lacks %q:\n%s", want, log())
		}
	}
	got := readInto(host)
	slave, err := os.OpenFile(devices["tty1"], os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	slave.Write([]byte("to-host\n"))
	if err := testutil.WaitFor(5*time.Second, func() bool { return got.String() == "to-host\r\n" }); err != nil {
		t.Fatalf("host got %q", got.String())
	}
	if c := cs.config("con1"); c != "fd:7" {
		t.Errorf("config con1 = %q", c)
	}
	host.Write([]byte("x\n")) // the guest's line is canonical
	b := make([]byte, 8)
	slave.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := slave.Read(b); string(b[:n]) != "x\n" {
		t.Errorf("guest read %q, %v", b[:n], err)
	}
	slave.Close()
	l := cs.lines[0]
	if err := testutil.WaitFor(5*time.Second, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.state == lineClosed }); err != nil {
		t.Fatal("line not closed after the guest closed it")
	}
	// A short-lived writer between two polls is still seen.
	s2, _ := os.OpenFile(devices["tty1"], os.O_RDWR|unix.O_NOCTTY, 0)
	s2.Write([]byte("again\n"))
	s2.Close()
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.HasSuffix(got.String(), "again\r\n") }); err != nil {
		t.Fatalf("host got %q", got.String())
	}
	// The legacy pty line: UML's failure line, output discarded.
	s3, _ := os.OpenFile(devices["ttyS1"], os.O_RDWR|unix.O_NOCTTY, 0)
	s3.Write([]byte("lost\n"))
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(log(), "getmaster - no usable host pty devices\r\n") }); err != nil {
		t.Errorf("no getmaster line:\n%s", log())
	}
	s3.Close()
}

// TestLinePts: con3=pts announces its host pts when opened, bridges it and
// answers config with pts:/dev/pts/N.
func TestLinePts(t *testing.T) {
	cs, devices, log := testConsoles(t, plan.Consoles{Lines: []plan.Line{{N: 3, Spec: "pts"}}}, map[string]*os.File{})
	if c := cs.config("con3"); c != "pts" {
		t.Errorf("config before open = %q", c)
	}
	slave, err := os.OpenFile(devices["tty3"], os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	var name string
	if err := testutil.WaitFor(5*time.Second, func() bool {
		_, after, ok := strings.Cut(log(), "Virtual console 3 assigned device '")
		name, _, _ = strings.Cut(after, "'")
		return ok
	}); err != nil {
		t.Fatalf("no announcement: %q", log())
	}
	if c := cs.config("con3"); c != "pts:"+name {
		t.Errorf("config = %q; want pts:%s", c, name)
	}
	user, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	got := readInto(user)
	slave.Write([]byte("hi\n"))
	if err := testutil.WaitFor(5*time.Second, func() bool { return got.String() == "hi\r\n" }); err != nil {
		t.Fatalf("user got %q", got.String())
	}
}

// TestLineSet: config conN=SPEC changes a closed line, is refused while the
// guest has it open and for a bad spec; none removes it.
func TestLineSet(t *testing.T) {
	cs, devices, log := testConsoles(t, plan.Consoles{Lines: []plan.Line{{N: 2, Spec: "null,fd:1"}}}, map[string]*os.File{})
	k := cs.k
	if c := cs.config("con2"); c != "null" {
		t.Errorf("config of a split line before open = %q; want null (UML keeps the string cut at the comma)", c)
	}
	if got := k.lineSet("con2", "foo"); !errors.Is(got, plan.ErrParse) {
		t.Errorf("lineSet(foo) = %v; want ErrParse", got)
	}
	if got := k.lineSet("con2", "fd:x"); !errors.Is(got, plan.ErrParse) || !strings.Contains(log(), "fd_init : couldn't parse file descriptor 'x'") {
		t.Errorf("lineSet(fd:x) = %v, log %q", got, log())
	}
	if got := k.lineSet("con5", "pts"); got == nil || !strings.Contains(got.Error(), "does not exist") {
		t.Errorf("lineSet on a missing line = %v", got)
	}
	if got := k.lineSet("con5", "none"); got != nil {
		t.Errorf("removing a missing line = %v", got)
	}
	if got := k.lineSet("con2", "pts"); got != nil {
		t.Fatalf("lineSet(pts) = %v", got)
	}
	if c := cs.config("con2"); c != "pts" {
		t.Errorf("config after set = %q", c)
	}
	slave, err := os.OpenFile(devices["tty2"], os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(log(), "Virtual console 2 assigned device '/dev/pts/") }); err != nil {
		t.Fatalf("no announcement after reconfiguring: %q", log())
	}
	if got := k.lineSet("con2", "null"); !errors.Is(got, plan.ErrBusy) {
		t.Errorf("lineSet on an open line = %v; want ErrBusy", got)
	}
	if got := k.lineConfig("con0"); got != "fd:0,fd:1" {
		t.Errorf("con0 = %q", got)
	}
}

// TestLineWinsize: a terminal input channel's window size reaches the
// guest's line when it opens, and later changes follow.
func TestLineWinsize(t *testing.T) {
	hostMaster, hostSlavePath, err := openPty("/dev/ptmx")
	if err != nil {
		t.Fatal(err)
	}
	defer hostMaster.Close()
	hostSlave, err := os.OpenFile(hostSlavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hostSlave.Close()
	set := func(rows, cols uint16) {
		rc, _ := hostMaster.SyscallConn()
		rc.Control(func(fd uintptr) { unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}) })
	}
	set(30, 100)
	_, devices, _ := testConsoles(t, plan.Consoles{Lines: []plan.Line{{N: 1, Spec: "fd:5"}}, FDs: []int{5}},
		map[string]*os.File{"hostfd-5": hostSlave})
	guest, err := os.OpenFile(devices["tty1"], os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	size := func() (uint16, uint16) {
		var ws *unix.Winsize
		rc, _ := guest.SyscallConn()
		rc.Control(func(fd uintptr) { ws, _ = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ) })
		if ws == nil {
			return 0, 0
		}
		return ws.Row, ws.Col
	}
	if err := testutil.WaitFor(5*time.Second, func() bool { r, c := size(); return r == 30 && c == 100 }); err != nil {
		r, c := size()
		t.Fatalf("guest line size %dx%d; want 30x100", r, c)
	}
	set(40, 120)
	if err := testutil.WaitFor(5*time.Second, func() bool { r, c := size(); return r == 40 && c == 120 }); err != nil {
		r, c := size()
		t.Fatalf("guest line size %dx%d after a resize; want 40x120", r, c)
	}
}
