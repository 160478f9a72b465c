package mountemu

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func loopGetStatus(fd uintptr, b []byte) {
	unix.Syscall(unix.SYS_IOCTL, fd, LoopGetStatus64, uintptr(unsafe.Pointer(&b[0])))
}

func blkGetSize64(fd uintptr, size *uint64) {
	unix.Syscall(unix.SYS_IOCTL, fd, BlkGetSize64, uintptr(unsafe.Pointer(size)))
}
