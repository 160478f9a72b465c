package mountemu

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SECCOMP_IOCTL_NOTIF_ID_VALID: _IOW('!', 2, __u64).
const ioctlNotifIDValid = 0x40082102

// installFilter loads prog for the calling thread with a listener and
// returns the listener fd.
func installFilter(prog []unix.SockFilter) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW)
	for {
		fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
		if errno == unix.EINVAL && flags&unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW != 0 {
			flags &^= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW // older kernels
			continue
		}
		if errno != 0 {
			return -1, os.NewSyscallError("seccomp SET_MODE_FILTER", errno)
		}
		return int(fd), nil
	}
}

// notifRecv receives one notification into b (NotifSize bytes, zeroed).
func notifRecv(fd uintptr, b []byte) error {
	clear(b)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&b[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// notifSend sends an encoded struct seccomp_notif_resp.
func notifSend(fd uintptr, b []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&b[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// notifIDValid reports whether notification id is still pending.
func notifIDValid(fd uintptr, id uint64) bool {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, ioctlNotifIDValid, uintptr(unsafe.Pointer(&id)))
	return errno == 0
}
