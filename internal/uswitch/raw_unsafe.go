//go:build linux

package uswitch

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
)

// The few socket calls x/sys has no typed wrapper for: bind/connect with a
// raw 110-byte sockaddr_un (UML and uml_switch use the full length, which
// unix.SockaddrUnix cannot express for abstract names) and the batched
// recvmmsg/sendmmsg of the data path. Every pointer handed to the kernel
// points into memory owned by a live Go object for the call's duration.

func rawSockaddrCall(trap uintptr, fd int, a *switchproto.Sockaddr, n int) error {
	for {
		_, _, e := unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), uintptr(n))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func bindRaw(fd int, a *switchproto.Sockaddr, n int) error {
	return rawSockaddrCall(unix.SYS_BIND, fd, a, n)
}

func connectRaw(fd int, a *switchproto.Sockaddr, n int) error {
	return rawSockaddrCall(unix.SYS_CONNECT, fd, a, n)
}

// mmsgBatch is a reusable array of message headers for recvmmsg/sendmmsg.
type mmsgBatch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newMmsgBatch(n int) mmsgBatch {
	return mmsgBatch{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n)}
}

// set points message i at buf and (if name is not nil) the address name of
// length namelen.
func (m *mmsgBatch) set(i int, buf []byte, name *switchproto.Sockaddr, namelen int) {
	iov := &m.iovs[i]
	if len(buf) > 0 {
		iov.Base = &buf[0]
	} else {
		iov.Base = nil
	}
	iov.SetLen(len(buf))
	h := &m.hdrs[i].Hdr
	h.Iov = iov
	h.Iovlen = 1
	if name != nil {
		h.Name = &name[0]
		h.Namelen = uint32(namelen)
	} else {
		h.Name = nil
		h.Namelen = 0
	}
	h.Flags = 0
	m.hdrs[i].Len = 0
}

// recvmmsg receives up to n datagrams without blocking.
func (m *mmsgBatch) recvmmsg(fd int, n int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(n),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// sendmmsg sends messages [from, from+n) without blocking and returns how
// many went out; the error is that of message from+count.
func (m *mmsgBatch) sendmmsg(fd int, from, n int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdrs[from])), uintptr(n),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}
