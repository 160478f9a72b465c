//go:build linux

package netdev

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
)

// addrLen is the length UML passes with a protocol address: 110 for an
// abstract one (its whole sun_path, which x/sys cannot express), family +
// path + NUL for a named one.
func addrLen(a *switchproto.Sockaddr) int {
	if a.IsAbstract() {
		return switchproto.SockaddrSize
	}
	return 2 + len(a.Path()) + 1
}

func bindRaw(fd int, a *switchproto.Sockaddr) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&a[0])), uintptr(addrLen(a)))
	if e != 0 {
		return e
	}
	return nil
}

func sendtoRaw(fd int, b []byte, to *switchproto.Sockaddr) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), unix.MSG_DONTWAIT,
		uintptr(unsafe.Pointer(&to[0])), uintptr(addrLen(to)))
	if e != 0 {
		return e
	}
	return nil
}
