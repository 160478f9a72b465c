package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/cow"
	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/portchan"
	"github.com/umlkit/umlkit/internal/ubd"
)

// P's host work for a K that runs as an unprivileged id block (linux run
// as root, hostids.go). K cannot open root's disk images nor make hostfs
// trees of host directories, so it asks P over the host helper channel
// (hosthelper.go): HostOpen for a disk file of this machine (nothing else:
// P keeps an allow-list of the configured disks and their backing files,
// which never grants O_CREAT, and only read access to a backing file), and
// HostHostfs for a tree under the hostfs= root, idmapped with K's user namespace so files keep the owners the host
// sees (guest root acts as host root there, as a root-run UML's hostfs
// does). The mounts P makes for K (the root, the guest's native ext4
// mounts) are idmapped the same way.

// prepareShifted runs before the first boot: COW files that do not exist
// yet are created here (K could not create them in the user's directory),
// and the disks are put on the allow-list.
func (m *machine) prepareShifted() error {
	for i := range m.plan.Disks {
		if err := m.allowDisk(&m.plan.Disks[i], true); err != nil {
			return err
		}
	}
	return nil
}

// allowDisk creates d's COW file when it is missing (create) and allows K
// to open d's files.
func (m *machine) allowDisk(d *plan.Disk, create bool) error {
	if d.IsDir {
		return nil
	}
	if d.Backing != "" && create {
		if _, err := os.Stat(d.File); errors.Is(err, os.ErrNotExist) {
			m.logf("Creating \"%s\" as COW file for \"%s\"", d.File, d.Backing)
			if err := ubd.CreateCOW(d.File, d.Backing, ubd.CreateOptions{}); err != nil {
				return fmt.Errorf("Failed to initialize ubd device %d :create COW file %s: %v", d.Unit, d.File, err)
			}
		}
	}
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	if m.allow == nil {
		m.allow = map[string]bool{}
	}
	m.allow[d.File] = !d.ReadOnly
	if _, ok := m.allow[d.Backing]; d.Backing != "" && !ok {
		m.allow[d.Backing] = false // a backing file is only ever read
	}
	if d.NoCOW {
		return nil
	}
	if b := cowBacking(d.File); b != "" {
		if _, ok := m.allow[b]; !ok {
			m.allow[b] = false
		}
	}
	return nil
}

// cowBacking returns the backing file a COW file's header names, or "".
func cowBacking(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, cow.HeaderReadSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return ""
	}
	var h cow.Header
	if h.UnmarshalBinary(buf[:n]) != nil {
		return ""
	}
	return h.BackingFile
}

// openForKernel opens path for K if the allow-list lets it.
func (m *machine) openForKernel(path string, flags int) (*os.File, error) {
	acc := flags & unix.O_ACCMODE
	if flags&^(unix.O_ACCMODE|unix.O_SYNC|unix.O_DSYNC|unix.O_CLOEXEC|unix.O_LARGEFILE) != 0 || acc == unix.O_WRONLY {
		return nil, fmt.Errorf("open %s: flags %#o not allowed", path, flags)
	}
	m.hostMu.Lock()
	rw, ok := m.allow[path]
	m.hostMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("open %s: not a disk of this machine", path)
	}
	if acc == unix.O_RDWR && !rw {
		return nil, &os.PathError{Op: "open", Path: path, Err: unix.EACCES}
	}
	return os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
}

// kernelReady runs between K's start and its first step: P takes K's user
// namespace and idmaps the root mount K is about to attach.
func (m *machine) kernelReady(kpid int, rootMount *os.File) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", kpid))
	if err != nil {
		return fmt.Errorf("kernel user namespace: %w", err)
	}
	m.hostMu.Lock()
	m.userns, m.readyPid = ns, kpid
	m.hostMu.Unlock()
	if rootMount != nil {
		if err := m.idmap(rootMount, false); err != nil {
			return fmt.Errorf("idmap the root file system: %w", err)
		}
	}
	return nil
}

func (m *machine) dropUserNS() {
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	if m.userns != nil {
		m.userns.Close()
		m.userns = nil
	}
	m.readyPid = 0
}

// idmap maps the detached mount tree through K's user namespace, so the
// guest sees the owners the host sees.
func (m *machine) idmap(tree *os.File, recursive bool) error {
	m.hostMu.Lock()
	ns := m.userns
	var fd int
	if ns != nil {
		fd = int(ns.Fd())
	}
	defer m.hostMu.Unlock()
	if ns == nil {
		return errors.New("the kernel is not running")
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(fd)}
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(int(tree.Fd()), "", uint(flags), &attr); err != nil {
		return os.NewSyscallError("mount_setattr MOUNT_ATTR_IDMAP", err)
	}
	return nil
}

// hostfsTree makes the detached, idmapped tree of rel under the hostfs=
// root for K. The host's submounts come along when every one of them can
// be idmapped; otherwise the directory's own file system alone (proc,
// sysfs and the like cannot be idmapped).
func (m *machine) hostfsTree(rel string, ro bool) (*os.File, error) {
	root := m.cfg.HostfsRoot
	if root == "" {
		root = "/"
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	defer unix.Close(fd)
	for _, recursive := range []bool{true, false} {
		flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH
		if recursive {
			flags |= unix.AT_RECURSIVE
		}
		tfd, err := unix.OpenTree(fd, "", uint(flags))
		if err != nil {
			return nil, os.NewSyscallError("open_tree", err)
		}
		tree := os.NewFile(uintptr(tfd), "hostfs-tree")
		err = m.idmap(tree, recursive)
		if err == nil && ro {
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
			err = unix.MountSetattr(tfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
		}
		if err == nil {
			return tree, nil
		}
		tree.Close()
		if !recursive || !errors.Is(err, unix.EINVAL) {
			return nil, err
		}
	}
	return nil, unix.EINVAL
}

// dirTree is the detached tree of a directory root (its own file system:
// idmapping a tree with proc or sysfs submounts fails).
func dirTree(path string, ro bool) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: path, Err: err}
	}
	if ro {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError("mount_setattr", err)
		}
	}
	return os.NewFile(uintptr(fd), "root-tree"), nil
}

// dialNotify connects a datagram socket to the notify socket at path.
func dialNotify(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "notify"), nil
}

// ttyAllowed reports whether a line of this machine names tty device path
// (tty:DEV channels are host devices K cannot open when run as root).
func (m *machine) ttyAllowed(path string) bool {
	if m.cons == nil {
		return false
	}
	for _, d := range m.cons.ttyDevices() {
		if d == path {
			return true
		}
	}
	return false
}

// serveXterm opens an xterm line's terminal for K: it runs the emulator as
// the user who started linux (with its display and X authority), sends the
// terminal over the private socket c, and closes the terminal (killing the
// emulator) when K closes c — also while the emulator is still starting.
func (m *machine) serveXterm(c *os.File, serial bool, n int) {
	defer c.Close()
	conn, err := net.FileConn(c)
	if err != nil {
		return
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := make(chan struct{})
	go func() { // K closed its end: the line's open was abandoned or closed
		b := make([]byte, 1)
		uc.Read(b)
		close(gone)
		cancel()
	}()
	umid := ""
	if m.dir != nil {
		umid = m.dir.Umid
	}
	xt := m.cons.plan.Xterm
	t, err := portchan.OpenXterm(ctx, portchan.XtermConfig{
		Emulator: xt[0], TitleSwitch: xt[1], ExecSwitch: xt[2],
		Title: portchan.Title(serial, n, umid),
	})
	if err != nil {
		rep := plan.HostReplyTo(err)
		b, _ := plan.MarshalHostReply(&rep)
		fdpass.Send(uc, b)
		return
	}
	defer t.Close()
	t.MakeRaw()
	b, _ := plan.MarshalHostReply(&plan.HostReply{})
	if err := fdpass.Send(uc, b, t.File); err != nil {
		return
	}
	<-gone
}
