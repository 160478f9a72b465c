//go:build linux

package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// bytesPtr is the address of b's first byte, or nil for an empty b.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func rawSockaddrCall(trap uintptr, fd int, addr []byte) error {
	return syscall3(trap, uintptr(fd), uintptr(bytesPtr(addr)), uintptr(len(addr)))
}

// syscall3 makes a three-argument system call, retrying EINTR.
func syscall3(trap, a1, a2, a3 uintptr) error {
	for {
		_, _, e := unix.Syscall(trap, a1, a2, a3)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// BindRaw binds socket fd to the raw socket address addr (for AF_UNIX a
// sockaddr_un: family, then sun_path), passing len(addr) as its length.
func BindRaw(fd int, addr []byte) error {
	return rawSockaddrCall(unix.SYS_BIND, fd, addr)
}

// ConnectRaw connects socket fd to the raw socket address addr, passing
// len(addr) as its length.
func ConnectRaw(fd int, addr []byte) error {
	return rawSockaddrCall(unix.SYS_CONNECT, fd, addr)
}

// SendtoRaw sends p on socket fd with flags (e.g. unix.MSG_DONTWAIT) to the
// raw socket address to, passing len(to) as its length.
func SendtoRaw(fd int, p []byte, flags int, to []byte) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(bytesPtr(p)), uintptr(len(p)),
			uintptr(flags), uintptr(bytesPtr(to)), uintptr(len(to)))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// RecvfromRaw receives one datagram on socket fd with flags into p and its
// sender's raw address into from, as the kernel gives it (Go's own decoding
// cuts abstract names at their first NUL). It returns the datagram's length
// and the address's, at most len(from).
func RecvfromRaw(fd int, p []byte, flags int, from []byte) (n, fromlen int, err error) {
	for {
		alen := uint32(len(from))
		r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(bytesPtr(p)), uintptr(len(p)),
			uintptr(flags), uintptr(bytesPtr(from)), uintptr(unsafe.Pointer(&alen)))
		switch e {
		case 0:
			return int(r), min(int(alen), len(from)), nil
		case unix.EINTR:
			continue
		}
		return 0, 0, e
	}
}

// SendmsgRaw is sendmsg(2) of p with the ancillary data oob (e.g.
// unix.UnixRights) to the raw address to (none if empty), retrying EINTR.
func SendmsgRaw(fd int, p, oob []byte, flags int, to []byte) error {
	var iov unix.Iovec
	iov.Base = (*byte)(bytesPtr(p))
	iov.SetLen(len(p))
	var msg unix.Msghdr
	msg.Name = (*byte)(bytesPtr(to))
	msg.Namelen = uint32(len(to))
	msg.Iov = &iov
	msg.Iovlen = 1
	msg.Control = (*byte)(bytesPtr(oob))
	msg.SetControllen(len(oob))
	return syscall3(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
}
