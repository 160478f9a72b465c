// Package initramfs reads the initramfs images Linux takes as initrd=: a
// sequence of cpio archives in the "newc" (070701) or "crc" (070702)
// format, each uncompressed or inside a compressed member, with any number
// of zero bytes between them, as Linux unpacks them into its rootfs.
//
// Walk goes through an image and hands every archive member to a Sink, in
// order, following the kernel's rules: which bytes start an archive or a
// compressed member, where an archive must be aligned, what ends one, which
// members are skipped, which are hard links of earlier ones, when a "crc"
// member's data checksum is wrong. Its errors carry the text Linux prints
// after "Initramfs unpacking failed: ". Decompression is pluggable
// (Options.Decoders, one Decoder per Method recognised by its magic): this
// package uses the standard library only; internal/initramfs/unpack supplies
// the decoders and a Sink that writes a directory tree.
//
// Pure: no I/O beyond the io.ReaderAt it is given, no syscalls.
//
// Format: Linux's Documentation/driver-api/early-userspace/buffer-format.rst
// (the image), cpio(5) "New ASCII Format" (the header); the kernel's
// behaviour where those say nothing was observed on Debian's linux.uml 6.1
// (docs/linux.md, "Initial RAM disk").
package initramfs

import (
	"errors"
	"fmt"
)

// Sizes and magics of the newc header.
const (
	// HeaderSize is the size of a newc header: a 6-byte magic and
	// thirteen 8-digit hexadecimal fields.
	HeaderSize = 110
	fieldLen   = 8
	magicLen   = 6

	MagicNewc = "070701" // cpio -H newc
	MagicCRC  = "070702" // cpio -H crc: newc plus a data checksum
	magicODC  = "070707" // cpio -H odc (old portable format), which Linux refuses

	// PathMax is Linux's PATH_MAX: longer names (their size counting the
	// NUL) and symlink targets are skipped.
	PathMax = 4096

	// Trailer is the name of the member that ends an archive.
	Trailer = "TRAILER!!!"
)

// File types of Header.Mode (the S_IF* bits).
const (
	TypeMask    = 0o170000
	TypeSocket  = 0o140000
	TypeSymlink = 0o120000
	TypeRegular = 0o100000
	TypeBlock   = 0o060000
	TypeDir     = 0o040000
	TypeChar    = 0o020000
	TypeFIFO    = 0o010000
)

// Errors of UnmarshalBinary.
var (
	ErrShortHeader = errors.New("initramfs: short cpio header")
	ErrBadMagic    = errors.New("initramfs: no cpio magic")
	ErrOldFormat   = errors.New("initramfs: old (odc) cpio format")
)

// Header is a newc/crc member header. Every field is 32 bits wide.
type Header struct {
	Magic     string // MagicNewc or MagicCRC
	Ino       uint32
	Mode      uint32 // file type and permission bits
	UID, GID  uint32
	NLink     uint32
	MTime     uint32 // seconds since the epoch
	FileSize  uint32 // bytes of data after the name
	DevMajor  uint32 // device of the file (hard-link identity)
	DevMinor  uint32
	RDevMajor uint32 // device a character or block special file names
	RDevMinor uint32
	NameSize  uint32 // bytes of the name, its NUL included
	Check     uint32 // MagicCRC: sum of the data bytes (mod 2^32); else 0
}

func (h *Header) fields() []*uint32 {
	return []*uint32{&h.Ino, &h.Mode, &h.UID, &h.GID, &h.NLink, &h.MTime, &h.FileSize,
		&h.DevMajor, &h.DevMinor, &h.RDevMajor, &h.RDevMinor, &h.NameSize, &h.Check}
}

// Type returns the file type bits of Mode.
func (h *Header) Type() uint32 { return h.Mode & TypeMask }

// UnmarshalBinary decodes a header from the first HeaderSize bytes of b.
// Like Linux, a field is the value of its leading hexadecimal digits (a
// field that starts with another character is 0).
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderSize {
		return ErrShortHeader
	}
	switch m := string(b[:magicLen]); m {
	case MagicNewc, MagicCRC:
		h.Magic = m
	case magicODC:
		return ErrOldFormat
	default:
		return ErrBadMagic
	}
	for i, f := range h.fields() {
		off := magicLen + i*fieldLen
		*f = parseHex(b[off : off+fieldLen])
	}
	return nil
}

func parseHex(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		default:
			return v
		}
	}
	return v
}

// MarshalBinary encodes the header as GNU cpio writes it (upper-case hex).
func (h *Header) MarshalBinary() ([]byte, error) {
	if h.Magic != MagicNewc && h.Magic != MagicCRC {
		return nil, fmt.Errorf("initramfs: header magic %q is neither %s nor %s", h.Magic, MagicNewc, MagicCRC)
	}
	return h.append(make([]byte, 0, HeaderSize)), nil
}

func (h *Header) append(b []byte) []byte {
	b = append(b, h.Magic...)
	for _, f := range h.fields() {
		b = fmt.Appendf(b, "%08X", *f)
	}
	return b
}

// AppendEntry appends a member to an archive being built in dst: h (its
// NameSize and FileSize are set from name and data, and for MagicCRC its
// Check), the name and the data, each padded to 4 bytes as newc requires.
// dst must hold whole members from an aligned start.
func AppendEntry(dst []byte, h Header, name string, data []byte) []byte {
	if h.Magic == "" {
		h.Magic = MagicNewc
	}
	h.NameSize = uint32(len(name) + 1)
	h.FileSize = uint32(len(data))
	if h.Magic == MagicCRC {
		h.Check = Checksum(0, data)
	}
	dst = h.append(dst)
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = pad4(dst)
	dst = append(dst, data...)
	return pad4(dst)
}

// AppendTrailer appends the member that ends an archive.
func AppendTrailer(dst []byte) []byte {
	return AppendEntry(dst, Header{Magic: MagicNewc, NLink: 1}, Trailer, nil)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Checksum adds the bytes of b to sum, as the crc format's Check does.
func Checksum(sum uint32, b []byte) uint32 {
	for _, c := range b {
		sum += uint32(c)
	}
	return sum
}
