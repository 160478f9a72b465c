package mountemu

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// flags that make a mount(2) something other than a new mount: those always
// run natively.
const notNewMount = unix.MS_REMOUNT | unix.MS_BIND | unix.MS_MOVE | unix.MS_SHARED | unix.MS_PRIVATE |
	unix.MS_SLAVE | unix.MS_UNBINDABLE

func (s *Server) mount(n *Notif, valid func() bool) Reply {
	flags := n.Args[3]
	if flags&(unix.MS_REMOUNT|unix.MS_BIND) == unix.MS_REMOUNT {
		return s.remount(n, valid)
	}
	if flags&notNewMount != 0 {
		return Reply{Continue: true}
	}
	mem, err := openMem(n.Pid, false)
	if err != nil {
		return Reply{Continue: true}
	}
	defer mem.Close()
	src, err1 := mem.readString(n.Args[0])
	target, err2 := mem.readString(n.Args[1])
	fstype, err3 := mem.readString(n.Args[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return Reply{Continue: true} // let the kernel give its own error
	}
	var data string
	if fstype == "hostfs" || fstype == "proc" {
		if data, err = mem.readString(n.Args[4]); err != nil {
			return errno(err)
		}
	}
	c, admin := s.caller(n.Pid)
	if !valid() {
		return Reply{Errno: int32(unix.EINTR)}
	}
	if fstype == "hostfs" {
		if !admin {
			return Reply{Errno: int32(unix.EPERM)}
		}
		return s.mountHostfs(n.Pid, &c, target, data, flags)
	}
	if fstype == "devtmpfs" && admin && target != "" {
		if r, ok := s.mountDev(n.Pid, &c, target, flags); ok {
			return r
		}
	}
	if fstype == "proc" && admin && data == "" && target != "" {
		return s.mountProc(n.Pid, &c, target, flags)
	}
	if src == "" || target == "" || !admin {
		return Reply{Continue: true} // the kernel refuses it (EPERM) as it would anyway
	}
	return s.mountImage(n.Pid, &c, src, target, fstype, flags)
}

// mountProc answers a new procfs mount without options by a process of
// the machine's own pid namespace with a recursive bind of /proc as it
// sees it, when that is the procfs of its pid namespace: the same files a
// fresh procfs shows, with the masks and the machine's views G put on
// them (init scripts written for UML, and the e2e harness, mount proc
// over /proc unconditionally; a fresh one would hide both). Any other proc
// mount (options such as hidepid=, a nested pid namespace, no procfs at
// /proc) continues natively.
func (s *Server) mountProc(pid uint32, c *creds, target string, flags uint64) Reply {
	callerNS, err := statNS(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return Reply{Continue: true}
	}
	var tree *os.File
	err = inGuest(pid, func() error {
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), "proc-tree")
		var sfs unix.Statfs_t
		var st unix.Stat_t
		if unix.Fstatfs(fd, &sfs) != nil || sfs.Type != unix.PROC_SUPER_MAGIC ||
			unix.Fstatat(fd, "1/ns/pid", &st, 0) != nil || (nsID{st.Dev, st.Ino}) != callerNS {
			f.Close()
			return errNotOurs
		}
		tree = f
		return nil
	})
	if err != nil {
		return Reply{Continue: true}
	}
	defer tree.Close()
	id, err := attach(pid, c, tree, target, flags)
	if err != nil {
		// systemd's service sandboxes (ProtectProc=, ProcSubset=) mount
		// proc into a half-built namespace the copy cannot be moved into
		// (ENOENT from its unit root): a fresh procfs there, as Linux
		// makes it, is what such a sandbox wants anyway.
		return Reply{Continue: true}
	}
	s.mu.Lock()
	s.mounts[id] = &mountRec{disk: -1, loop: -1, tree: true}
	s.mu.Unlock()
	return Reply{}
}

// mountAttrs maps mount(2) flags to mount_setattr attributes.
func mountAttrs(flags uint64) uint64 {
	var a uint64
	for _, m := range []struct{ ms, attr uint64 }{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV}, {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	} {
		if flags&m.ms != 0 {
			a |= m.attr
		}
	}
	return a
}

// attach moves the detached tree onto target as the guest process pid
// sees it, and returns the new mount's id.
func attach(pid uint32, c *creds, tree *os.File, target string, flags uint64) (uint64, error) {
	if a := mountAttrs(flags); a != 0 {
		attr := unix.MountAttr{Attr_set: a}
		if err := unix.MountSetattr(int(tree.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return 0, err
		}
	}
	var id uint64
	var tfd int
	err := inGuestAs(pid, c, func() error { // the target resolves as the caller's
		var err error
		tfd, err = unix.Open(target, unix.O_PATH|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer unix.Close(tfd)
	err = inGuest(pid, func() error {
		if err != nil {
			return err
		}
		if err := unix.MoveMount(int(tree.Fd()), "", tfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return err
		}
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, target, 0, unix.STATX_MNT_ID, &stx); err != nil {
			return err
		}
		id = stx.Mnt_id
		return nil
	})
	return id, err
}

func (s *Server) mountHostfs(pid uint32, c *creds, target, data string, flags uint64) Reply {
	o, err := ParseHostfsData(data)
	if err != nil {
		return Reply{Errno: int32(unix.EINVAL)}
	}
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if s.cfg.OpenHostfs != nil {
		tree, err := s.cfg.OpenHostfs(o.Path, flags&unix.MS_RDONLY != 0)
		if err != nil {
			s.logf("hostfs: %s: %v", o.Path, err)
			return errno(err)
		}
		defer tree.Close()
		return s.attachHostfs(pid, c, tree, target, flags)
	}
	root := s.cfg.HostfsRoot
	if root == "" {
		root = "/"
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		s.logf("hostfs: root %s: %v", root, err)
		return errno(err)
	}
	defer unix.Close(rfd)
	p := "."
	if o.Path != "" {
		p = o.Path
	}
	fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return errno(err)
	}
	defer unix.Close(fd)
	tfd, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		s.logf("hostfs: open_tree %s: %v", o.Path, err)
		return errno(err)
	}
	tree := os.NewFile(uintptr(tfd), "hostfs-tree")
	defer tree.Close()
	return s.attachHostfs(pid, c, tree, target, flags)
}

// mountDev answers a devtmpfs mount, which a user namespace cannot make,
// with a recursive bind of the machine's /dev (Config.DevTree); ok is
// false when there is none (the kernel then refuses the mount).
func (s *Server) mountDev(pid uint32, c *creds, target string, flags uint64) (Reply, bool) {
	if s.cfg.DevTree == nil {
		return Reply{}, false
	}
	dev := s.cfg.DevTree()
	if dev == nil {
		return Reply{}, false
	}
	tfd, err := unix.OpenTree(int(dev.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		s.logf("devtmpfs: open_tree: %v", err)
		return errno(err), true
	}
	tree := os.NewFile(uintptr(tfd), "dev-tree")
	defer tree.Close()
	return s.attachHostfs(pid, c, tree, target, flags), true // a bind with submounts, as hostfs
}

func (s *Server) attachHostfs(pid uint32, c *creds, tree *os.File, target string, flags uint64) Reply {
	id, err := attach(pid, c, tree, target, flags)
	if err != nil {
		return errno(err)
	}
	s.mu.Lock()
	s.mounts[id] = &mountRec{disk: -1, loop: -1, hostfs: true}
	s.mu.Unlock()
	return Reply{}
}

// source kinds
const (
	srcOther = iota
	srcLoop
	srcFile
)

// classify opens src as pid sees it: an emulated loop device (its index),
// or a regular file (opened for the mount), or something else.
func (s *Server) classify(pid uint32, c *creds, src string, ro bool) (kind, idx int, f *os.File, err error) {
	err = inGuestAs(pid, c, func() error {
		fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if i, ok := s.ids[fileID{st.Dev, st.Ino}]; ok && i >= 0 {
			kind, idx = srcLoop, i
			return nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		mode := unix.O_RDWR
		if ro {
			mode = unix.O_RDONLY
		}
		ffd, err := unix.Open(src, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		kind, f = srcFile, os.NewFile(uintptr(ffd), src)
		return nil
	})
	return
}

func (s *Server) mountImage(pid uint32, c *creds, src, target, fstype string, flags uint64) Reply {
	ro := flags&unix.MS_RDONLY != 0
	if !IsExtType(fstype) {
		// Only our loop devices need an answer here (EINVAL makes mount
		// try its next type); anything else is the kernel's business.
		if len(src) < 9 || src[:9] != "/dev/loop" {
			return Reply{Continue: true}
		}
	}
	kind, idx, f, err := s.classify(pid, c, src, ro)
	if err != nil {
		return Reply{Continue: true}
	}
	req := ImageRequest{ReadOnly: ro, FSType: fstype}
	loop := -1
	switch kind {
	case srcOther:
		return Reply{Continue: true}
	case srcFile:
		defer f.Close()
		req.File = f
	case srcLoop:
		if !IsExtType(fstype) {
			return Reply{Errno: int32(unix.EINVAL)}
		}
		s.mu.Lock()
		l := &s.loops[idx]
		if l.backing == nil {
			s.mu.Unlock()
			return Reply{Errno: int32(unix.ENXIO)}
		}
		req.File, req.Offset, req.SizeLimit = l.backing, l.info.Offset, l.info.Sizelimit
		if l.info.Flags&LoFlagsReadOnly != 0 {
			req.ReadOnly = true
		}
		l.mounts++ // keeps the backing file while we work
		s.mu.Unlock()
		loop = idx
	}
	disk := -1
	if !req.ReadOnly {
		var busy string
		if disk, busy = s.claimDisk(s.underlying(req.File)); busy != "" {
			s.logf("mount %s: %s is already mounted read-write", target, busy)
			if loop >= 0 {
				s.mu.Lock()
				s.loops[loop].mounts--
				s.mu.Unlock()
			}
			return Reply{Errno: int32(unix.EBUSY)}
		}
	}
	id, img, err := s.mountExt(pid, c, req, target, flags)
	if err != nil {
		s.mu.Lock()
		if loop >= 0 {
			s.loops[loop].mounts--
		}
		if disk >= 0 {
			s.rw[disk]--
		}
		s.mu.Unlock()
		return errno(err)
	}
	s.mu.Lock()
	s.mounts[id] = &mountRec{disk: disk, loop: loop, image: img}
	s.mu.Unlock()
	return Reply{}
}

func (s *Server) mountExt(pid uint32, c *creds, req ImageRequest, target string, flags uint64) (uint64, *Image, error) {
	sb := make([]byte, 2048)
	if _, err := req.File.ReadAt(sb, int64(req.Offset)); err != nil || !HasExtMagic(sb) {
		return 0, nil, unix.EINVAL
	}
	if s.cfg.MountImage == nil {
		return 0, nil, unix.ENODEV
	}
	if req.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	img, err := s.cfg.MountImage(req)
	if err != nil {
		s.logf("mount %s: %v", target, err)
		return 0, nil, unix.EINVAL
	}
	id, err := attach(pid, c, img.Tree, target, flags)
	img.Tree.Close()
	img.Tree = nil
	if err != nil {
		if !img.Wait(5 * time.Second) {
			img.Stop()
			img.Wait(20 * time.Second)
		}
		return 0, nil, err
	}
	return id, img, nil
}

func (s *Server) umount(n *Notif, valid func() bool) Reply {
	mem, err := openMem(n.Pid, false)
	if err != nil {
		return Reply{Continue: true}
	}
	target, err := mem.readString(n.Args[0])
	mem.Close()
	if err != nil || !valid() {
		return Reply{Continue: true}
	}
	flags := int(n.Args[1])
	if _, ok := s.caller(n.Pid); !ok {
		return Reply{Continue: true} // the kernel refuses it
	}
	var rec *mountRec
	var id uint64
	err = inGuest(n.Pid, func() error {
		at := 0
		if flags&unix.UMOUNT_NOFOLLOW != 0 {
			at = unix.AT_SYMLINK_NOFOLLOW
		}
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, target, at, unix.STATX_MNT_ID, &stx); err != nil {
			return errNotOurs
		}
		s.mu.Lock()
		rec, id = s.mounts[stx.Mnt_id], stx.Mnt_id
		s.mu.Unlock()
		if rec == nil {
			return errNotOurs
		}
		if rec.hostfs || rec.tree {
			// The bind carries submounts: take them all.
			return unix.Unmount(target, flags|unix.MNT_DETACH)
		}
		return unix.Unmount(target, flags)
	})
	if errors.Is(err, errNotOurs) {
		return Reply{Continue: true}
	}
	if err != nil {
		return errno(err)
	}
	s.mu.Lock()
	delete(s.mounts, id)
	if rec.disk >= 0 {
		s.rw[rec.disk]--
	}
	s.mu.Unlock()
	if rec.image != nil && flags&unix.MNT_DETACH == 0 {
		if !rec.image.Wait(30 * time.Second) {
			s.logf("umount %s: the file system server did not exit in 30 s", target)
		}
	}
	if rec.loop >= 0 {
		s.mu.Lock()
		l := &s.loops[rec.loop]
		l.mounts--
		if l.mounts == 0 && l.info.Flags&LoFlagsAutoclear != 0 && l.backing != nil {
			l.backing.Close()
			*l = loopDev{}
		}
		s.mu.Unlock()
	}
	return Reply{}
}

// claimDisk counts a read-write mount of f's disk or partition
// (Config.Disks) and returns its index, or -1 when f is none of them; busy
// names what is mounted read-write already: the same disk or partition,
// the disk of a partition, or a partition of a disk.
func (s *Server) claimDisk(f *os.File) (idx int, busy string) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return -1, ""
	}
	id := FileID{st.Dev, st.Ino}
	if s.cfg.Disks == nil {
		return -1, ""
	}
	all := s.cfg.Disks()
	var d *DiskIDs
	for i := range all {
		for _, x := range all[i].IDs {
			if x == id && d == nil {
				d = &all[i]
			}
		}
	}
	if d == nil {
		return -1, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range all {
		related := o.Index == d.Index || o.Disk == d.Disk && (o.Part == 0) != (d.Part == 0)
		if related && (o.Busy || s.rw[o.Index] > 0) {
			return -1, o.Name
		}
	}
	s.rw[d.Index]++
	return d.Index, ""
}
