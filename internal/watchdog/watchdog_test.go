package watchdog

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/watchdogproto"
)

// pipes returns the helper's stdin (read end) and stdout (write end) and
// the kernel's ends.
func pipes(t *testing.T) (stdin, stdout, ping, ready *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds2, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	stdin, ping = os.NewFile(uintptr(fds[0]), "stdin"), os.NewFile(uintptr(fds[1]), "ping")
	stdout, ready = os.NewFile(uintptr(fds2[0]), "stdout"), os.NewFile(uintptr(fds2[1]), "ready")
	t.Cleanup(func() { stdin.Close(); stdout.Close(); ping.Close(); ready.Close() })
	return
}

func TestEOFExitsZero(t *testing.T) {
	stdin, stdout, ping, ready := pipes(t)
	done := make(chan int)
	go func() {
		done <- Run(Config{Args: watchdogproto.Args{Mode: watchdogproto.ModePid, Pid: os.Getpid()}, Timeout: 5 * time.Second}, stdin, stdout, os.Stderr)
	}()
	b := make([]byte, 1)
	if _, err := ready.Read(b); err != nil || b[0] != 0 {
		t.Fatalf("ready byte = %v, %v; want 0x00", b, err)
	}
	for i := 0; i < 3; i++ {
		ping.Write([]byte{'\n'})
	}
	ping.Close()
	if code := <-done; code != 0 {
		t.Errorf("Run after EOF = %d; want 0", code)
	}
}

func TestHangMconsole(t *testing.T) {
	stdin, stdout, ping, ready := pipes(t)
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan int)
	start := time.Now()
	go func() {
		done <- Run(Config{Args: watchdogproto.Args{Mode: watchdogproto.ModeMconsole, Socket: path}, Timeout: 300 * time.Millisecond}, stdin, stdout, os.Stderr)
	}()
	ready.Read(make([]byte, 1))
	// pings keep it alive past one timeout
	for i := 0; i < 4; i++ {
		time.Sleep(100 * time.Millisecond)
		ping.Write([]byte{'\n'})
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 100)
	n, err := conn.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:n], mconsole.WatchdogHangPacket()) {
		t.Errorf("hang packet = %x; want %x", b[:n], mconsole.WatchdogHangPacket())
	}
	if code := <-done; code != 1 {
		t.Errorf("Run after hang = %d; want 1", code)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("hang after %v: pings did not re-arm the timer", d)
	}
}

func TestHangPidKills(t *testing.T) {
	stdin, stdout, _, ready := pipes(t)
	victim := exec.Command("sleep", "30")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		done <- Run(Config{Args: watchdogproto.Args{Mode: watchdogproto.ModePid, Pid: victim.Process.Pid}, Timeout: 200 * time.Millisecond, Pause: 50 * time.Millisecond}, stdin, stdout, os.Stderr)
	}()
	ready.Read(make([]byte, 1))
	err := victim.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Errorf("victim ended with %v; want SIGINT", err)
	}
	if code := <-done; code != 1 {
		t.Errorf("Run after hang = %d; want 1", code)
	}
}

func TestNoSuchPid(t *testing.T) {
	stdin, stdout, _, _ := pipes(t)
	if code := Run(Config{Args: watchdogproto.Args{Mode: watchdogproto.ModePid, Pid: 999999999}}, stdin, stdout, os.Stderr); code != 1 {
		t.Errorf("Run(no such pid) = %d; want 1", code)
	}
}

func TestHangSendError(t *testing.T) {
	stdin, stdout, _, ready := pipes(t)
	var errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- Run(Config{Args: watchdogproto.Args{Mode: watchdogproto.ModeMconsole, Socket: filepath.Join(t.TempDir(), "none")}, Timeout: 100 * time.Millisecond}, stdin, stdout, &errb)
	}()
	ready.Read(make([]byte, 1))
	if code := <-done; code != 1 || errb.String() != "sendto: No such file or directory\n" {
		t.Errorf("Run(no listener) = %d, stderr %q; want 1, perror sendto", code, errb.String())
	}
}
