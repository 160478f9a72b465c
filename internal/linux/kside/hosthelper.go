package kside

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/loopdev"
	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/sys"
)

// helperTimeout bounds one host request (a native mount may take a while).
const helperTimeout = 30 * time.Second

// helperClient is K's end of the host helper channel (plan/host.go): a
// root-run K asks P for the host work its id block may not do.
type helperClient struct {
	mu   sync.Mutex // one request at a time
	conn *net.UnixConn
}

func newHelperClient(f *os.File) *helperClient {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil
	}
	return &helperClient{conn: c.(*net.UnixConn)}
}

// do sends one request (with f's descriptor when f is not nil) and returns
// the reply and the descriptor that came with it (nil if none).
func (h *helperClient) do(req plan.HostRequest, f *os.File) (*plan.HostReply, *os.File, error) {
	b, err := plan.MarshalHostRequest(&req)
	if err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var files []*os.File
	if f != nil {
		files = append(files, f)
	}
	if err := fdpass.Send(h.conn, b, files...); err != nil {
		return nil, nil, fmt.Errorf("host helper: %w", err)
	}
	h.conn.SetReadDeadline(time.Now().Add(helperTimeout))
	return recvHostReply(h.conn)
}

// recvHostReply reads one reply and its descriptor.
func recvHostReply(c *net.UnixConn) (*plan.HostReply, *os.File, error) {
	msg, files, _, err := fdpass.Recv(c, plan.MaxMessage, 1)
	if err != nil && !errors.Is(err, fdpass.ErrNoFD) { // replies without an fd are fine
		return nil, nil, fmt.Errorf("host helper: %w", err)
	}
	var f *os.File
	if len(files) > 0 {
		f = files[0]
	}
	rep, err := plan.UnmarshalHostReply(msg)
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, nil, err
	}
	return rep, f, nil
}

// file is do for the requests whose answer is a descriptor.
func (h *helperClient) file(req plan.HostRequest) (*os.File, error) {
	_, f, err := h.do(req, nil)
	if err == nil && f == nil {
		err = unix.EIO
	}
	return f, err
}

// mount asks P for a native mount of the image file at path.
func (h *helperClient) mount(path string, ro bool) (*mountemu.Image, error) {
	rep, tree, err := h.do(plan.HostRequest{Op: plan.HostMount, Path: path, ReadOnly: ro}, nil)
	if err == nil && tree == nil {
		err = errors.New("mount helper: no mount in the reply")
	}
	if err != nil {
		return nil, err
	}
	return &mountemu.Image{
		Tree: tree,
		Wait: func(d time.Duration) bool { return loopdev.WaitLoopFree(rep.Loop, d) },
		Stop: func() {},
	}, nil
}

// open has P open a disk file of this machine (ubd.Options.Open).
func (h *helperClient) open(name string, flags int) (*os.File, error) {
	f, err := h.file(plan.HostRequest{Op: plan.HostOpen, Path: name, Flags: flags})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	// Name the file by its path, for the driver's messages.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name), nil
}

// hostfs has P make the idmapped tree of a hostfs mount.
func (h *helperClient) hostfs(path string, ro bool) (*os.File, error) {
	return h.file(plan.HostRequest{Op: plan.HostHostfs, Path: path, ReadOnly: ro})
}

// tty has P open a tty: channel's host device.
func (h *helperClient) tty(dev string, flags int) (*os.File, error) {
	f, err := h.file(plan.HostRequest{Op: plan.HostTTY, Path: dev, Flags: flags})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dev, Err: err}
	}
	return f, nil
}

// guard has P start the guard of the guest whose init is pid and move
// init into the guest's cgroup.
func (h *helperClient) guard(pid int) error {
	_, _, err := h.do(plan.HostRequest{Op: plan.HostGuard, Pid: pid}, nil)
	return err
}

// xterm has P open an xterm line's terminal (host/hostside.go serveXterm):
// the reply comes on a private socket, so a slow emulator holds up no
// other request; closing done (or ctx ending first) tells P to close the
// terminal.
func (h *helperClient) xterm(ctx context.Context, serial bool, n int) (term, done *os.File, err error) {
	mine, theirs, err := sys.FilePair(unix.SOCK_SEQPACKET, "xterm", "xterm-p")
	if err != nil {
		return nil, nil, err
	}
	_, _, err = h.do(plan.HostRequest{Op: plan.HostXterm, Serial: serial, N: n}, theirs)
	theirs.Close()
	if err != nil {
		mine.Close()
		return nil, nil, err
	}
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, nil, err
	}
	uc := c.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { uc.SetReadDeadline(time.Unix(1, 0)) })
	_, t, err := recvHostReply(uc)
	stop()
	var he *plan.HostError
	switch {
	case errors.As(err, &he):
		uc.Close()
		return nil, nil, errors.New(he.Msg)
	case err == nil && t == nil:
		err = errors.New("no terminal in the reply")
	}
	if err != nil {
		uc.Close()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("xterm_open : os_rcv_fd: %w", ctx.Err())
		}
		return nil, nil, fmt.Errorf("xterm_open : os_rcv_fd failed: %v", err)
	}
	df, err := uc.File()
	uc.Close()
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return t, df, nil
}
