//go:build linux

package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func (m *Mmsg) call(trap uintptr, fd, from, n, flags int) (int, error) {
	hdrs := m.Hdrs[from : from+n]
	if n == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n), uintptr(flags), 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// Recvmmsg receives up to n datagrams on socket fd into messages
// [from, from+n) with flags (e.g. unix.MSG_DONTWAIT) and returns how many
// arrived.
func (m *Mmsg) Recvmmsg(fd, from, n, flags int) (int, error) {
	return m.call(unix.SYS_RECVMMSG, fd, from, n, flags)
}

// Sendmmsg sends messages [from, from+n) on socket fd with flags (e.g.
// unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL) and returns how many went out; an
// error is that of message from (the kernel reports a later message's error
// on the next call).
func (m *Mmsg) Sendmmsg(fd, from, n, flags int) (int, error) {
	return m.call(unix.SYS_SENDMMSG, fd, from, n, flags)
}
