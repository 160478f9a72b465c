package mountemu

import (
	"errors"
	"path"
	"strings"
)

// HostfsOptions is what a hostfs mount asks for.
type HostfsOptions struct {
	// Path is the host directory below the hostfs= root ("" = the root).
	Path     string
	ReadOnly bool
}

// ErrBadHostfsData is returned for a data string that is not a path.
var ErrBadHostfsData = errors.New("hostfs: bad mount data")

// genericOptions are mount(8) words that can reach the data string when a
// tool does not turn them into flags; they are not part of the path.
var genericOptions = map[string]bool{
	"rw": true, "ro": true, "defaults": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"exec": true, "noexec": true, "atime": true, "noatime": true, "relatime": true, "strictatime": true,
	"diratime": true, "nodiratime": true, "sync": true, "async": true, "auto": true, "noauto": true,
	"user": true, "nouser": true, "users": true, "nofail": true, "silent": true, "loud": true,
}

// ParseHostfsData parses the data argument of a hostfs mount(2): UML takes
// the whole string as the host path below the hostfs= root; a trailing list
// of generic mount words (",ro,noatime") that a tool left in the string is
// split off, "ro" making the mount read-only. The path is cleaned; NUL bytes
// are refused.
func ParseHostfsData(data string) (HostfsOptions, error) {
	var o HostfsOptions
	if strings.IndexByte(data, 0) >= 0 {
		return o, ErrBadHostfsData
	}
	words := strings.Split(data, ",")
	n := len(words)
	for n > 0 && genericOptions[words[n-1]] {
		if words[n-1] == "ro" {
			o.ReadOnly = true
		}
		n--
	}
	p := strings.Join(words[:n], ",")
	if n == 1 && genericOptions[p] {
		p = ""
	}
	if p == "" {
		return o, nil
	}
	o.Path = path.Clean("/" + p)
	if o.Path == "/" {
		o.Path = ""
	}
	return o, nil
}

// IsExtType reports whether fstype names a type the ext image mounter
// serves ("" = let it guess, as mount(2) callers that probe do not send).
func IsExtType(fstype string) bool {
	switch fstype {
	case "ext2", "ext3", "ext4":
		return true
	}
	return false
}

// ext superblock: at byte 1024, magic 0xEF53 (little-endian) at offset 56.
const (
	extSuperOffset = 1024
	extMagicOffset = extSuperOffset + 56
	extMagic       = 0xEF53
)

// HasExtMagic reports whether b (the first 2 KiB of a file system) holds an
// ext2/3/4 superblock magic.
func HasExtMagic(b []byte) bool {
	if len(b) < extMagicOffset+2 {
		return false
	}
	return uint16(b[extMagicOffset])|uint16(b[extMagicOffset+1])<<8 == extMagic
}
