package mcclient

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// bindAbstract binds fd to the abstract address "\0" + name, zero-filled to
// the full 108-byte sun_path with addrlen 110, as uml_mconsole does. x/sys
// cannot express it: it limits names to 107 bytes and trims the length.
func bindAbstract(fd int, name string) error {
	var sa unix.RawSockaddrUnix
	sa.Family = unix.AF_UNIX
	for i := 0; i < len(name) && i+1 < len(sa.Path); i++ {
		sa.Path[i+1] = int8(name[i])
	}
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrUnix)
	if e != 0 {
		return e
	}
	return nil
}
