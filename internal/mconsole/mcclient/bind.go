package mcclient

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// bindAbstract binds fd to the abstract address "\0" + name, zero-filled to
// the full 108-byte sun_path with addrlen 110, as uml_mconsole does. x/sys
// cannot express it: it limits names to 107 bytes and trims the length.
func bindAbstract(fd int, name string) error {
	var sa [unix.SizeofSockaddrUnix]byte
	binary.NativeEndian.PutUint16(sa[:2], unix.AF_UNIX) // sa_family
	copy(sa[3:], name)                                  // sun_path[1:]
	return sys.BindRaw(fd, sa[:])
}
