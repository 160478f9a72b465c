package mountemu

import "golang.org/x/sys/unix"

const auditArchX86_64 = 0xC000003E

var hostSysnums = &sysnums{
	arch: auditArchX86_64, mount: unix.SYS_MOUNT, umount2: unix.SYS_UMOUNT2, ioctl: unix.SYS_IOCTL,
	newAPI: []uint32{unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG,
		unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR},
	denied: []uint32{unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE,
		unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
		unix.SYS_KEYCTL, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_PERF_EVENT_OPEN, unix.SYS_BPF,
		unix.SYS_USERFAULTFD, unix.SYS_LOOKUP_DCOOKIE, unix.SYS_ACCT, unix.SYS_SWAPON,
		unix.SYS_SWAPOFF, unix.SYS_SYSLOG, unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_USELIB,
		unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_NFSSERVCTL,
		unix.SYS_QUOTACTL},
}
