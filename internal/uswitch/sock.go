//go:build linux

package uswitch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// bindStale binds fd to the named socket path; when the path is in use it
// dials it first: a live server is refused (ErrSocketInUse), a dead one (or
// a plain file) is removed and the bind retried (ErrStale if that fails).
func bindStale(fd int, path string, sotype int) error {
	sa, err := switchproto.NamedSockaddr(path)
	if err != nil {
		return err
	}
	err = sys.BindRaw(fd, sa[:])
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		return os.NewSyscallError("bind "+path, err)
	}
	probe, perr := unix.Socket(unix.AF_UNIX, sotype|unix.SOCK_CLOEXEC, 0)
	if perr != nil {
		return os.NewSyscallError("socket", perr)
	}
	cerr := sys.ConnectRaw(probe, sa[:])
	unix.Close(probe)
	if cerr == nil {
		return ErrSocketInUse
	}
	if !errors.Is(cerr, unix.ECONNREFUSED) {
		return fmt.Errorf("%w: %v", ErrStale, cerr)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("%w: %v", ErrStale, err)
	}
	if err := sys.BindRaw(fd, sa[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrStale, err)
	}
	return nil
}

func (s *Switch) reportSock(kind, path string, err error) error {
	switch {
	case errors.Is(err, ErrSocketInUse):
		s.err.printf("The %s socket '%s' has another server attached to it\nYou can either\n\tremove '%s'\n\tor rerun with a different, unused filename for a socket\n",
			kind, path, path)
	case errors.Is(err, ErrStale):
		s.err.printf("The %s socket '%s' exists, isn't used, but couldn't be removed\n", kind, path)
	default:
		return fmt.Errorf("%s socket %s: %w", kind, path, err)
	}
	return &ReportedError{Err: fmt.Errorf("%s socket %s: %w", kind, path, err)}
}

func (s *Switch) bindCtl() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := bindStale(fd, s.cfg.CtlPath, unix.SOCK_STREAM); err != nil {
		unix.Close(fd)
		return s.reportSock("control", s.cfg.CtlPath, err)
	}
	s.ctlPath = absPath(s.cfg.CtlPath)
	if err := unix.Listen(fd, listenBacklog); err != nil {
		unix.Close(fd)
		os.Remove(s.ctlPath)
		return os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(fd), s.ctlPath)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		os.Remove(s.ctlPath)
		return fmt.Errorf("control socket %s: %w", s.ctlPath, err)
	}
	s.ctlLn = ln.(*net.UnixListener)
	return nil
}

func (s *Switch) bindData() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	if s.cfg.DataPath != "" {
		if err := bindStale(fd, s.cfg.DataPath, unix.SOCK_DGRAM); err != nil {
			unix.Close(fd)
			return s.reportSock("data", s.cfg.DataPath, err)
		}
		s.dataPath = absPath(s.cfg.DataPath)
		// Reply with the absolute path when it fits, so clients in another
		// directory reach it.
		if s.dataAddr, err = switchproto.NamedSockaddr(s.dataPath); err != nil {
			s.dataAddr, _ = switchproto.NamedSockaddr(s.cfg.DataPath)
		}
	} else {
		// The real one's abstract blob {0, pad, pid, usec}; retry on the
		// (unlikely) collision with another switch of the same pid.
		for try := 0; ; try++ {
			now := time.Now()
			s.dataAddr = switchproto.SwitchSockaddr(int32(os.Getpid()), int32(now.Nanosecond()/1000))
			err = sys.BindRaw(fd, s.dataAddr[:])
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EADDRINUSE) || try > 100 {
				unix.Close(fd)
				return os.NewSyscallError("bind data socket", err)
			}
			time.Sleep(time.Microsecond)
		}
	}
	// The shared socket only receives (every port is sent to on a socket
	// of its own). FORCE needs CAP_NET_ADMIN; fall back silently.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBufSize)
	}
	s.dataFile = os.NewFile(uintptr(fd), "uml_switch data socket")
	rc, err := s.dataFile.SyscallConn()
	if err != nil {
		s.dataFile.Close()
		return err
	}
	s.dataRC = rc
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// ErrNotListeningSocket is returned for an inherited control descriptor
// that is not a listening AF_UNIX stream socket.
var ErrNotListeningSocket = errors.New("inherited control descriptor is not a listening unix stream socket")

// inheritCtl adopts cfg.CtlFile (socket activation).
func (s *Switch) inheritCtl() error {
	rc, err := s.cfg.CtlFile.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	var path string
	rc.Control(func(fd uintptr) {
		dom, err1 := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		typ, err2 := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		acc, err3 := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err := errors.Join(err1, err2, err3); err != nil || dom != unix.AF_UNIX || typ != unix.SOCK_STREAM || acc != 1 {
			cerr = fmt.Errorf("%w (fd %d)", ErrNotListeningSocket, fd)
			return
		}
		unix.SetNonblock(int(fd), true)
		unix.CloseOnExec(int(fd))
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			if u, ok := sa.(*unix.SockaddrUnix); ok {
				path = u.Name
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	ln, err := net.FileListener(s.cfg.CtlFile)
	if err != nil {
		return fmt.Errorf("inherited control socket: %w", err)
	}
	s.cfg.CtlFile.Close()
	s.ctlLn = ln.(*net.UnixListener)
	s.ctlLn.SetUnlinkOnClose(false)
	if path != "" {
		s.cfg.CtlPath = path
	}
	s.ctlPath = ""
	return nil
}
