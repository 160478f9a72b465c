//go:build linux

package sys

import "golang.org/x/sys/unix"

// RawRead is read(2) on a non-blocking descriptor without the runtime's
// system-call bookkeeping (unix.RawSyscall): the calling goroutine keeps
// its P, so the scheduler does not hand it off, and sysmon is not woken to
// watch the call. Only for calls that never sleep (EAGAIN instead) and
// take microseconds, on per-frame paths; it retries EINTR.
func RawRead(fd int, p []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(bytesPtr(p)), uintptr(len(p)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// RawWrite is write(2) as RawRead reads.
func RawWrite(fd int, p []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(bytesPtr(p)), uintptr(len(p)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}
