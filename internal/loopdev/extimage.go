package loopdev

import (
	"errors"
	"fmt"
	"io"
)

// ext2/3/4 superblock magic: 0xEF53 little-endian at byte 56 of the
// superblock, which starts 1024 bytes into the image.
const (
	extMagicOff = 1024 + 56
	extMagic0   = 0x53
	extMagic1   = 0xef
)

// ErrNotExt says a root image is not an ext2/3/4 file system; the caller's
// "VFS: Cannot open root device "FILE"" names the file.
var ErrNotExt = errors.New("not an ext2/3/4 file system (no ext2 superblock); give a disk image made with uml_mkrootfs or mkfs.ext4")

// CheckExtImage reads the superblock magic of an image before anything
// (e2fsck, fuse2fs, the kernel's ext4 on a loop device) is run on it, so a
// wrong file gets one clear line instead of their diagnostics.
func CheckExtImage(f io.ReaderAt) error {
	var b [2]byte
	if _, err := f.ReadAt(b[:], extMagicOff); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrNotExt
		}
		return fmt.Errorf("read superblock: %w", err)
	}
	if b[0] != extMagic0 || b[1] != extMagic1 {
		return ErrNotExt
	}
	return nil
}
