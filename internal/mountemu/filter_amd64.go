package mountemu

import "golang.org/x/sys/unix"

const auditArchX86_64 = 0xC000003E

var hostSysnums = &sysnums{
	arch: auditArchX86_64, mount: unix.SYS_MOUNT, umount2: unix.SYS_UMOUNT2, ioctl: unix.SYS_IOCTL,
	newAPI: []uint32{unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG,
		unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR},
}
