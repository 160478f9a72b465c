//go:build linux

package switchtest

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
)

func bindRaw(fd int, a *switchproto.Sockaddr, n int) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), uintptr(n))
	if e != 0 {
		return e
	}
	return nil
}

func sendto(fd int, b []byte, to *switchproto.Sockaddr, n int) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), unix.MSG_DONTWAIT,
		uintptr(unsafe.Pointer(&to[0])), uintptr(n))
	if e != 0 {
		return e
	}
	return nil
}

type mmsg struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newMmsg(n int) mmsg { return mmsg{make([]unix.Mmsghdr, n), make([]unix.Iovec, n)} }

func (m *mmsg) set(i int, b []byte, to *switchproto.Sockaddr, n int) {
	m.iovs[i].Base = &b[0]
	m.iovs[i].SetLen(len(b))
	h := &m.hdrs[i].Hdr
	h.Iov, h.Iovlen, h.Flags = &m.iovs[i], 1, 0
	if to != nil {
		h.Name, h.Namelen = &to[0], uint32(n)
	} else {
		h.Name, h.Namelen = nil, 0
	}
}

func (m *mmsg) sendmmsg(fd, n int, dontwait bool) (int, error) {
	flags := uintptr(0)
	if dontwait {
		flags = unix.MSG_DONTWAIT
	}
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(n), flags, 0, 0)
	if e == unix.EINTR {
		return 0, unix.EAGAIN
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (m *mmsg) recvmmsg(fd, n int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
