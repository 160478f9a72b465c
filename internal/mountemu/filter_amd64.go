package mountemu

import "golang.org/x/sys/unix"

const (
	auditArchX86_64 = 0xC000003E
	auditArchI386   = 0x40000003
)

var hostSysnums = &sysnums{
	arch: auditArchX86_64, mount: unix.SYS_MOUNT, umount2: unix.SYS_UMOUNT2, ioctl: unix.SYS_IOCTL, sysinfo: unix.SYS_SYSINFO,
	newAPI: []uint32{unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG,
		unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR},
	denied: []uint32{unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE,
		unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
		unix.SYS_KEYCTL, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_PERF_EVENT_OPEN, unix.SYS_BPF,
		unix.SYS_USERFAULTFD, unix.SYS_LOOKUP_DCOOKIE, unix.SYS_ACCT, unix.SYS_SWAPON,
		unix.SYS_SWAPOFF, unix.SYS_SYSLOG, unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_USELIB,
		unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_NFSSERVCTL,
		unix.SYS_QUOTACTL},
	x32: 0x40000000,
	compat: &sysnums{
		arch: auditArchI386,
		// i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl); the new
		// mount API has the same numbers on every architecture.
		newAPI: []uint32{428, 429, 430, 431, 432, 433, 442},
		denied: []uint32{
			283, // kexec_load
			128, // init_module
			350, // finit_module
			129, // delete_module
			286, // add_key
			287, // request_key
			288, // keyctl
			342, // open_by_handle_at
			336, // perf_event_open
			357, // bpf
			374, // userfaultfd
			253, // lookup_dcookie
			51,  // acct
			87,  // swapon
			115, // swapoff
			103, // syslog
			110, // iopl
			101, // ioperm
			86,  // uselib
			79,  // settimeofday
			264, // clock_settime
			343, // clock_adjtime
			169, // nfsservctl
			131, // quotactl
		},
	},
}
