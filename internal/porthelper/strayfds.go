package porthelper

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeInherited closes the descriptors this process inherited beyond
// stdin, stdout, stderr and keep. The kernel's helpers inherit many of the
// kernel's fds (its end of other sessions' socket pairs, other consoles'
// terminals and TCP connections: UML does not mark them close-on-exec); a
// helper that kept them would keep those sessions open after they end.
// Inherited fds are the ones without FD_CLOEXEC: everything the Go runtime
// opens has it, so the runtime's own fds are left alone.
func closeInherited(keep int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	var fds []int
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, fd)
		}
	}
	closeStray(fds, keep)
}

// closeStray closes those of fds that are above 2, not keep and not
// close-on-exec.
func closeStray(fds []int, keep int) {
	for _, fd := range fds {
		if fd <= 2 || fd == keep {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // closed already (the ReadDir fd) or opened by the runtime
		}
		unix.Close(fd)
	}
}
