package kside

import (
	"strconv"
	"strings"
)

// fuse2fsMount describes one fuse2fs mount of an ext2/3/4 image: the root
// file system of an unprivileged (or COW-rooted) guest, or a guest's own
// mount of a ubd disk or loop window. Both go through args, so they share
// one option list.
type fuse2fsMount struct {
	Image    string // the image file or /dev/fd/N
	Dir      string // the mount point
	Name     string // the source shown in /proc/mounts (default: Image)
	ReadOnly bool
	Offset   uint64 // byte offset of the file system in Image
}

// fuse2fsEntryTimeout is how long the host kernel may trust looked-up and
// missing names (seconds). Every change to the file system goes through
// the one mount fuse2fs serves, and the kernel updates its name cache for
// each change made through the mount, so nothing expires early.
const fuse2fsEntryTimeout = "86400"

// args returns fuse2fs's command line (after the program name).
//
// fuse2fs appends its defaults (kernel_cache, subtype, use_ino, fsname,
// attr_timeout=0, big_writes) after the caller's options, and libfuse lets
// the last one win; so they are switched off (no_default_opts) and the
// whole list is given here:
//
//   - attr_timeout stays 0: libfuse 2's high-level API gives every name of
//     a hard-linked file its own kernel inode, so a change through one name
//     (ln, a write) leaves the others' cached attributes stale; any
//     positive timeout shows the old link count or size right after it.
//   - auto_cache instead of kernel_cache: kernel_cache keeps a file's pages
//     across opens even when the file was written through another name of
//     a hard link (the stale data is read back); auto_cache keeps them only
//     while the file's mtime and size are unchanged (fuse2fs stores whole
//     seconds, so a same-size change through another name within the second
//     of the last open still goes unseen). Without either, every open would
//     drop the file's pages, every exec would re-read its binary.
//   - entry_timeout and negative_timeout are long (see above): a cold
//     lookup costs one round trip, not two.
func (m fuse2fsMount) args() []string {
	name := m.Name
	if name == "" {
		name = m.Image
	}
	opts := []string{
		"no_default_opts",
		"fsname=" + fsnameEscape(name),
		"subtype=ext4",
		"allow_other", "suid", "dev",
		"use_ino",
		"auto_cache",
		// Writes up to max_write (128 KiB, libfuse 2's limit) per
		// request instead of one page at a time.
		"big_writes",
		"entry_timeout=" + fuse2fsEntryTimeout,
		"negative_timeout=" + fuse2fsEntryTimeout,
		"attr_timeout=0",
	}
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	if m.Offset != 0 {
		opts = append(opts, "offset="+strconv.FormatUint(m.Offset, 10))
	}
	return []string{m.Image, m.Dir, "-f", "-o", strings.Join(opts, ",")}
}

// fsnameEscape escapes the characters libfuse's option parser treats
// specially in an option value (',' separates options, '\' escapes).
func fsnameEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(s)
}

// oneLine joins a tool's multi-line output into one line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}
