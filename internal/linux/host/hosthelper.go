package host

import (
	"errors"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/loopdev"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/watchdog"
)

// The host helper channel (plan/host.go) carries a root-run K's requests
// for host work: K runs as an unprivileged id block, so P opens this
// machine's disk files for it, makes idmapped trees (hostfs, the guest's
// native ext4 mounts), opens tty: devices the lines name, starts the guard
// and the watchdog helper, and runs xterm emulators as the user.
//
// Native mounts (HostMount) let the guest of a root-run linux mount
// ext2/3/4 natively, as the root disk is: K cannot (its user namespace
// gives it no say over the host's ext4 driver), so P puts the image on a
// real loop device (autoclear), makes a detached ext4 mount and sends the
// mount fd back; K moves it into the guest. Only plain image files of ubd
// disks go this way, by their host path: a loop device on the driver's
// FUSE export fails its reads (EIO), so COW disks and other files go
// through fuse2fs.

// startHostHelper returns K's end of the helper pair and a function that
// stops P's server, or nil when P is not root (then K has no id block and
// needs no host help). UMLKIT_MOUNT_FUSE=1 refuses the native mounts
// (fuse2fs instead); the other requests are always served.
func (m *machine) startHostHelper() (*os.File, func()) {
	native := os.Getenv("UMLKIT_MOUNT_FUSE") == ""
	if m.ids == nil {
		return nil, nil
	}
	pf, kf, err := sys.FilePair(unix.SOCK_SEQPACKET, "mounthelper-p", plan.FDHostHelper)
	if err != nil {
		m.logf("mount helper: %v (guest mounts go through fuse2fs)", err)
		return nil, nil
	}
	c, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		kf.Close()
		return nil, nil
	}
	conn := c.(*net.UnixConn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.serveHostHelper(conn, native)
	}()
	return kf, func() {
		kf.Close()
		conn.Close()
		<-done
	}
}

// serveHostHelper answers K's requests until K closes its end.
func (m *machine) serveHostHelper(conn *net.UnixConn, native bool) {
	for {
		msg, files, _, err := fdpass.Recv(conn, plan.MaxMessage, 1)
		if err != nil && !errors.Is(err, fdpass.ErrNoFD) {
			return
		}
		if len(msg) == 0 && len(files) == 0 {
			return
		}
		var in *os.File
		if len(files) > 0 {
			in = files[0]
		}
		var rep plan.HostReply
		var out *os.File
		req, err := plan.UnmarshalHostRequest(msg)
		if err == nil {
			rep, out, err = m.hostRequest(req, in, native)
		} else if in != nil {
			in.Close()
		}
		if err != nil {
			rep = plan.HostReplyTo(err)
		}
		b, _ := plan.MarshalHostReply(&rep)
		if out != nil {
			fdpass.Send(conn, b, out)
			out.Close()
		} else {
			fdpass.Send(conn, b)
		}
	}
}

// hostRequest serves one request; in is the descriptor that came with it
// (xterm's private socket), which it takes over. It returns the reply and
// the descriptor to send with it.
func (m *machine) hostRequest(req *plan.HostRequest, in *os.File, native bool) (plan.HostReply, *os.File, error) {
	if in != nil && req.Op != plan.HostXterm {
		in.Close()
		return plan.HostReply{}, nil, plan.ErrBadHostRequest
	}
	switch req.Op {
	case plan.HostXterm:
		if in == nil {
			return plan.HostReply{}, nil, plan.ErrBadHostRequest
		}
		go m.serveXterm(in, req.Serial, req.N)
		return plan.HostReply{}, nil, nil
	case plan.HostOpen:
		f, err := m.openForKernel(req.Path, req.Flags)
		return plan.HostReply{}, f, err
	case plan.HostGuard:
		return plan.HostReply{}, nil, m.startHostGuard(req.Pid)
	case plan.HostWatchdog:
		cmd, in, err := watchdog.Start(os.Getpid(), m.cfg.Notify)
		if err != nil {
			return plan.HostReply{}, nil, err
		}
		// The helper exits at EOF of its input (K closes its copy when the
		// guest closes /dev/watchdog); reap it then.
		go cmd.Wait()
		return plan.HostReply{}, in, nil
	case plan.HostTTY:
		if !m.ttyAllowed(req.Path) {
			return plan.HostReply{}, nil, &os.PathError{Op: "open", Path: req.Path, Err: unix.EACCES}
		}
		f, err := os.OpenFile(req.Path, (req.Flags&(unix.O_ACCMODE|unix.O_NONBLOCK))|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		return plan.HostReply{}, f, err
	case plan.HostHostfs:
		f, err := m.hostfsTree(req.Path, req.ReadOnly)
		return plan.HostReply{}, f, err
	case plan.HostMount:
		if !native {
			return plan.HostReply{}, nil, plan.ErrBadHostRequest
		}
		return m.nativeMount(req.Path, req.ReadOnly)
	}
	return plan.HostReply{}, nil, plan.ErrBadHostRequest
}

// nativeMount puts a disk image of this machine on a loop device and
// returns its detached ext4 mount, idmapped for K.
func (m *machine) nativeMount(path string, ro bool) (plan.HostReply, *os.File, error) {
	flags := os.O_RDWR
	if ro {
		flags = os.O_RDONLY
	}
	img, err := m.openForKernel(path, flags) // only this machine's disks
	if err != nil {
		return plan.HostReply{}, nil, err
	}
	mfd, loop, err := loopdev.LoopMountFile(img, ro)
	img.Close()
	if err != nil {
		return plan.HostReply{}, nil, err
	}
	if err := m.idmap(mfd, false); err != nil {
		mfd.Close()
		return plan.HostReply{}, nil, err
	}
	return plan.HostReply{Loop: loop}, mfd, nil
}
