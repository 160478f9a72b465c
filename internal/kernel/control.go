package kernel

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The control channel is a SOCK_SEQPACKET socketpair between P and K: P
// sends one request per packet ("uname"), K answers with one packet
// beginning "ok " or "err ". Halt and reboot travel as signals instead
// (SIGUSR1, SIGUSR2) so they work even when K is busy.

func controlPair() (p, k *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "control-p"), os.NewFile(uintptr(fds[1]), "control"), nil
}

// controlClient is P's end.
type controlClient struct {
	mu   sync.Mutex // one request at a time
	conn net.Conn
}

func newControlClient(f *os.File) (*controlClient, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return &controlClient{conn: c}, nil
}

func (c *controlClient) ask(req string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.conn.Write([]byte(req)); err != nil {
		return "", fmt.Errorf("kernel control: %w", err)
	}
	buf := make([]byte, 64<<10)
	n, err := c.conn.Read(buf)
	if err != nil {
		return "", fmt.Errorf("kernel control: %w", err)
	}
	resp := string(buf[:n])
	if rest, ok := strings.CutPrefix(resp, "ok "); ok {
		return rest, nil
	}
	return "", fmt.Errorf("%s", strings.TrimPrefix(resp, "err "))
}

func (c *controlClient) Close() error { return c.conn.Close() }

// serveControl is K's end: it answers requests until the peer closes.
func (k *kernel) serveControl(f *os.File) {
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		conn.Write([]byte(k.control(string(buf[:n]))))
	}
}

func (k *kernel) control(req string) string {
	cmd, _, _ := strings.Cut(req, " ")
	switch cmd {
	case "uname":
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return "err " + err.Error()
		}
		f := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
		return fmt.Sprintf("ok %s %s %s %s %s", f(u.Sysname[:]), f(u.Nodename[:]), f(u.Release[:]), f(u.Version[:]), f(u.Machine[:]))
	}
	return "err unknown control request " + fmt.Sprintf("%q", cmd)
}
