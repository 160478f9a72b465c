package mcserver

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawAddr is a sender address kept as the kernel gave it. Go's own sockaddr
// decoding cuts abstract names at the first NUL, but uml_mconsole binds the
// 108-byte abstract name "\0" + "%5d" + zero fill: replying to the cut name
// would reach nobody, so the bytes and length are kept verbatim.
type rawAddr struct {
	b [128]byte
	n uint32
}

func recvfrom(fd int, p []byte, from *rawAddr) (int, error) {
	from.n = uint32(len(from.b))
	r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(&from.b[0])), uintptr(unsafe.Pointer(&from.n)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func sendto(fd int, p []byte, to *rawAddr) error {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(&to.b[0])), uintptr(to.n))
	if e != 0 {
		return e
	}
	return nil
}
