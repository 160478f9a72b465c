package porthelper

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/testutil"
)

const noTTYMsg = "TIOCNOTTY failed in port-helper, check UML's exec call for xterm or telnetd: Inappropriate ioctl for device\n"

func TestMessage(t *testing.T) {
	for _, pid := range []int{1, 4242, 4194304} {
		b := EncodeMessage(pid)
		if len(b) != MessageSize {
			t.Fatalf("EncodeMessage(%d) = %d bytes; want %d", pid, len(b), MessageSize)
		}
		if got := DecodeMessage(b); got != pid {
			t.Errorf("DecodeMessage(EncodeMessage(%d)) = %d", pid, got)
		}
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, {1, 2, 3, 4, 5}} {
		if got := DecodeMessage(b); got != -1 {
			t.Errorf("DecodeMessage(%v) = %d; want -1", b, got)
		}
	}
}

func TestAbstractName(t *testing.T) {
	for pid, prefix := range map[int]string{7: "@    7", 19234: "@19234", 1234567: "@1234567"} {
		n := AbstractName(pid)
		if len(n) != 108 || !strings.HasPrefix(n, prefix) || strings.Trim(n[len(prefix):], "\x00") != "" {
			t.Errorf("AbstractName(%d) = %q (%d bytes); want %q + NULs to 108 bytes", pid, n, len(n), prefix)
		}
	}
}

func dgramPair(t *testing.T) (kernel *net.UnixConn, helper int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "kernel-end")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c.(*net.UnixConn), fds[1]
}

type result struct {
	reason Reason
	err    error
}

func start(ctx context.Context, c config) (<-chan result, *testutil.SyncBuffer) {
	var stderr testutil.SyncBuffer
	c.stderr = &stderr
	ch := make(chan result, 1)
	go func() {
		r, err := run(ctx, c)
		ch <- result{r, err}
	}()
	return ch, &stderr
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("port-helper did not return")
		return result{}
	}
}

// recvTerminal receives the helper's message and checks the fd is the pty.
func recvTerminal(t *testing.T, kernel *net.UnixConn, ptm *os.File, wantPID int) *os.File {
	t.Helper()
	kernel.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, files, _, err := fdpass.Recv(kernel, 4, 1)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if got := DecodeMessage(data); got != wantPID {
		t.Errorf("message pid = %d; want %d", got, wantPID)
	}
	term := files[0]
	if _, err := term.Write([]byte("to-master")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	ptm.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ptm.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "to-master") {
		t.Errorf("pty master read %q, %v; want to-master (received fd is not the terminal)", buf[:n], err)
	}
	return term
}

func TestTelnetdModeHangup(t *testing.T) {
	testutil.LeakCheck(t)
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	kernel, sock := dgramPair(t)
	ch, stderr := start(context.Background(), config{
		args: []string{"-h", "localhost", "-p"}, termFD: int(pts.Fd()), sockFD: sock, pid: 4242,
		kernelPID: func(int) int { return 0 },
	})
	term := recvTerminal(t, kernel, ptm, 4242)
	defer term.Close()
	select {
	case r := <-ch:
		t.Fatalf("port-helper returned %v, %v before the terminal hung up", r.reason, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	ptm.Close() // telnetd / the emulator goes away
	if r := wait(t, ch); r.reason != TerminalHangup || r.err != nil {
		t.Errorf("run = %v, %v; want %v, nil", r.reason, r.err, TerminalHangup)
	}
	if got := stderr.String(); got != noTTYMsg {
		t.Errorf("stderr = %q; want %q", got, noTTYMsg)
	}
}

func TestKernelExit(t *testing.T) {
	testutil.LeakCheck(t)
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	kernel, sock := dgramPair(t)
	fake := exec.Command("sleep", "60")
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	defer fake.Process.Kill()
	ch, _ := start(context.Background(), config{
		termFD: int(pts.Fd()), sockFD: sock, pid: 77, kernelPID: func(int) int { return fake.Process.Pid },
	})
	term := recvTerminal(t, kernel, ptm, 77)
	defer term.Close()
	fake.Process.Kill()
	fake.Wait()
	if r := wait(t, ch); r.reason != KernelExited || r.err != nil {
		t.Errorf("run = %v, %v; want %v, nil", r.reason, r.err, KernelExited)
	}
}

func TestKernelPIDIsSocketPairCreator(t *testing.T) {
	_, sock := dgramPair(t)
	// The pair was made by this process, so SO_PEERCRED names us and the
	// helper falls back to its grandparent; a pair made by a child names it.
	if got, want := findKernel(sock), mustParent(t, os.Getppid()); got.pid != want && !(want <= 1 && got.pid == 0) || got.socketPair {
		t.Errorf("findKernel(own pair) = %+v; want grandparent %d", got, want)
	}
	cred, err := unix.GetsockoptUcred(sock, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || int(cred.Pid) != os.Getpid() {
		t.Errorf("SO_PEERCRED on a socket pair = %+v, %v; want our pid %d", cred, err, os.Getpid())
	}
}

func mustParent(t *testing.T, pid int) int {
	t.Helper()
	p, err := parentOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSocketMode(t *testing.T) {
	testutil.LeakCheck(t)
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	path := filepath.Join(t.TempDir(), "xterm-pipeABCDEF")
	kernel, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer kernel.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pid := 31000 + os.Getpid()%1000 // unique enough for the abstract name
	ch, _ := start(ctx, config{args: []string{SocketFlag, path, "ignored"}, termFD: int(pts.Fd()), sockFD: -1, pid: pid})
	kernel.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, files, from, err := fdpass.Recv(kernel, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer files[0].Close()
	if DecodeMessage(data) != pid {
		t.Errorf("pid = %d; want %d", DecodeMessage(data), pid)
	}
	if want := strings.TrimRight(AbstractName(pid), "\x00"); from == nil || from.Name != want {
		t.Errorf("sender address = %+v; want abstract %q", from, want)
	}
	// Go trims the trailing NULs; /proc/net/unix shows the whole 108-byte
	// name (NULs as '@'), i.e. the bind used addrlen 110.
	if full := strings.ReplaceAll(AbstractName(pid), "\x00", "@") + "\n"; !procNetUnixHas(t, full) {
		t.Errorf("/proc/net/unix has no socket named %q", full)
	}
	cancel()
	if r := wait(t, ch); r.reason != Cancelled || !errors.Is(r.err, context.Canceled) {
		t.Errorf("run after cancel = %v, %v; want Cancelled, context.Canceled", r.reason, r.err)
	}
}

func TestSocketErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{SocketFlag, filepath.Join(dir, "missing")}, "connect: No such file or directory\n"},
		{[]string{SocketFlag}, "connect: No such file or directory\n"}, // connects to "(null)"
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		_, err := run(context.Background(), config{args: tt.args, termFD: -1, sockFD: -1, pid: os.Getpid(), stderr: &stderr})
		if !errors.Is(err, ErrReported) || stderr.String() != tt.want {
			t.Errorf("run(%q) = %v, stderr %q; want ErrReported, %q", tt.args, err, stderr.String(), tt.want)
		}
	}
}

func TestSendFailure(t *testing.T) {
	var stderr bytes.Buffer
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = run(context.Background(), config{termFD: int(f.Fd()), sockFD: int(f.Fd()), pid: 1, stderr: &stderr})
	if err == nil || errors.Is(err, ErrReported) || !errors.Is(err, unix.ENOTSOCK) {
		t.Errorf("run with a non-socket = %v; want an ENOTSOCK error to print", err)
	}
	if stderr.String() != noTTYMsg {
		t.Errorf("stderr = %q; want %q", stderr.String(), noTTYMsg)
	}
}

func procNetUnixHas(t *testing.T, suffix string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), " "+suffix)
}

func TestCloseInherited(t *testing.T) {
	r, w, err := os.Pipe() // close-on-exec: must survive
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	inh, err := unix.Dup(int(w.Fd())) // no FD_CLOEXEC: "inherited"
	if err != nil {
		t.Fatal(err)
	}
	keep, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(keep)
	closeStray([]int{0, 1, 2, int(r.Fd()), int(w.Fd()), inh, keep}, keep)
	if _, err := unix.FcntlInt(uintptr(inh), unix.F_GETFD, 0); err != unix.EBADF {
		unix.Close(inh)
		t.Errorf("inherited fd %d still open after closeStray (%v)", inh, err)
	}
	for _, fd := range []int{int(r.Fd()), int(w.Fd()), keep, 0, 1, 2} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			t.Errorf("fd %d closed by closeStray: %v", fd, err)
		}
	}
}
