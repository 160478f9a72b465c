package mountemu

import (
	"errors"

	"golang.org/x/sys/unix"
)

// remount answers mount(2) with MS_REMOUNT (and without MS_BIND) for a
// disk file system that the host mounted for the guest: an ext2/3/4
// superblock on a host loop device, which belongs to the host's user
// namespace, so the kernel refuses the guest's remount of it (EPERM) —
// systemd-remount-fs's `mount -o remount /` of the root in fstab among
// them. Under UML the remount reaches the guest's own kernel and succeeds.
//
// The request is carried out on the mount, not the superblock: its
// read-only, nosuid, nodev and noexec flags become what the caller asked
// for (read-only is also cleared when not asked for; the others are only
// ever added, as clearing a flag the host set is not the guest's to do).
// File-system options in the data argument are ignored: the host's driver
// keeps the options it was mounted with. Read-write over a read-only
// superblock (a ubd disk opened read-only) fails with EACCES, Linux's
// answer for a write-protected device. Every other remount — a file
// system the guest's namespace owns (tmpfs, proc, fuse2fs) — runs natively.
func (s *Server) remount(n *Notif, valid func() bool) Reply {
	mem, err := openMem(n.Pid, false)
	if err != nil {
		return Reply{Continue: true}
	}
	target, err := mem.readString(n.Args[1])
	mem.Close()
	if err != nil || target == "" {
		return Reply{Continue: true}
	}
	c, admin := s.caller(n.Pid)
	if !valid() {
		return Reply{Errno: int32(unix.EINTR)}
	}
	if !admin {
		return Reply{Continue: true} // EPERM, from the kernel
	}
	flags := n.Args[3]
	reply := Reply{Continue: true}
	err = inGuestAs(n.Pid, &c, func() error {
		var st unix.Statfs_t
		var dev unix.Stat_t
		if unix.Statfs(target, &st) != nil || st.Type != unix.EXT4_SUPER_MAGIC ||
			unix.Stat(target, &dev) != nil || unix.Major(dev.Dev) != loopMajor {
			return nil // not a disk the host mounted: the kernel's business
		}
		set, clr := remountAttrs(flags)
		attr := unix.MountAttr{Attr_set: set, Attr_clr: clr}
		if err := unix.MountSetattr(unix.AT_FDCWD, target, 0, &attr); err != nil {
			return err
		}
		if clr&unix.MOUNT_ATTR_RDONLY != 0 && unix.Statfs(target, &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
			// The superblock itself is read-only: put the mount back.
			unix.MountSetattr(unix.AT_FDCWD, target, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
			return unix.EACCES
		}
		reply = Reply{}
		return nil
	})
	if err != nil {
		var e unix.Errno
		if errors.As(err, &e) {
			return Reply{Errno: int32(e)}
		}
		return errno(err)
	}
	return reply
}

// loopMajor is the host's loop block devices' major number: the disks the
// host mounts for the guest sit on them (hostfs binds of an ext4 directory
// do not, and keep the kernel's answer).
const loopMajor = 7

// remountAttrs maps a remount's flags to mount_setattr's attributes to set
// and to clear (see remount).
func remountAttrs(flags uint64) (set, clr uint64) {
	set = mountAttrs(flags)
	if flags&unix.MS_RDONLY == 0 {
		clr = unix.MOUNT_ATTR_RDONLY
	}
	return set, clr
}
