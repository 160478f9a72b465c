//go:build linux

// Package unpack unpacks an initramfs image (internal/initramfs) into a
// directory, as Linux unpacks initrd= into its rootfs: it supplies the
// decoders of the compressed members (Decoders) and a Sink that makes the
// members in the directory.
//
// Safety: the directory is the root of every name in the image. Each name
// is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV) from the directory's descriptor, so "..", absolute
// names and symlinks in the image resolve inside it, as they resolve
// inside the rootfs in Linux (where it is the root); the last component is
// then made with the *at calls and never followed. Call it from a process
// whose credentials are the guest's (linux's K: root of the guest's user
// namespace), so the image's owners are guest ids.
//
// What the guest cannot have is not made: character and block device
// nodes (a user namespace cannot make them; linux gives the guest its
// /dev). Owners the guest's id map lacks stay root. Both are reported in
// one log line each. Modes (set-id bits included), owners and mtimes are
// kept; directory mtimes are set after their archive, as Linux sets them.
//
// Concurrency: Unpack is synchronous; it keeps no state.
package unpack

import (
	"errors"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/initramfs"
)

// Options control Unpack.
type Options struct {
	// Logf receives the kernel's log lines about single members and the
	// summary lines of what was not made; nil drops them.
	Logf func(format string, args ...any)
}

// Unpack unpacks the image (size bytes of img) into the directory root. It
// returns nil when the whole image was unpacked, else the fault: an
// *initramfs.Error with the kernel's text ("Initramfs unpacking failed: "
// + its text is Linux's line). What was unpacked before stays.
func Unpack(root *os.File, img io.ReaderAt, size int64, o Options) error {
	s := &sink{root: int(root.Fd()), logf: o.Logf}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	err := initramfs.Walk(img, size, initramfs.Options{Decoders: Decoders(), Logf: s.logf}, s)
	s.EndArchive()
	s.report()
	return err
}

type dirTime struct {
	name  string
	mtime uint32
}

type sink struct {
	root     int
	logf     func(string, ...any)
	dirs     []dirTime // directories of this archive, their mtimes set at its end
	devices  []string  // device nodes not made
	unmapped int       // members whose owner is not in the id map
}

const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// open resolves name inside the root.
func (s *sink) open(name string, flags uint64) (int, error) {
	if name == "" {
		name = "."
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(s.root, name, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve})
		if err == unix.EAGAIN && i < 16 { // a rename raced the lookup
			continue
		}
		return fd, err
	}
}

// split returns the parent directory (resolved inside the root) and the
// last component of name. An empty base means name is a directory as a
// whole ("." , "..", "/", "a/.."): whole is then an open descriptor of it.
func (s *sink) split(name string) (parent int, base string, whole int, err error) {
	trimmed := strings.TrimRight(name, "/")
	if trimmed == "" {
		trimmed = "."
	}
	dir, base := path.Split(trimmed)
	if base == "." || base == ".." {
		fd, err := s.open(trimmed, unix.O_RDONLY|unix.O_DIRECTORY)
		return -1, "", fd, err
	}
	fd, err := s.open(dir, unix.O_PATH|unix.O_DIRECTORY)
	return fd, base, -1, err
}

// clear removes what stands at base in parent unless it is of type typ
// (a directory only when empty), as Linux does before it makes a member.
func clear(parent int, base string, typ uint32) {
	var st unix.Stat_t
	if unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	if st.Mode&unix.S_IFMT == typ && typ != unix.S_IFLNK {
		return
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		unix.Unlinkat(parent, base, unix.AT_REMOVEDIR)
	} else {
		unix.Unlinkat(parent, base, 0)
	}
}

func (s *sink) chown(fd int, base string, e *initramfs.Entry, flags int) {
	if err := unix.Fchownat(fd, base, int(e.UID), int(e.GID), flags); err == unix.EINVAL || err == unix.EOVERFLOW {
		s.unmapped++
	}
}

func mtime(e *initramfs.Entry) []unix.Timespec {
	t := unix.Timespec{Sec: int64(e.MTime)}
	return []unix.Timespec{t, t}
}

func (s *sink) Entry(e *initramfs.Entry, data io.Reader) error {
	if t := e.Type(); t == initramfs.TypeChar || t == initramfs.TypeBlock {
		s.devices = append(s.devices, e.Name)
		return nil
	}
	parent, base, whole, err := s.split(e.Name)
	if err != nil {
		return nil // Linux ignores members it cannot make
	}
	if whole >= 0 {
		defer unix.Close(whole)
		if e.Type() == initramfs.TypeDir {
			s.chown(whole, "", e, unix.AT_EMPTY_PATH)
			unix.Fchmod(whole, e.Mode&0o7777)
			s.dirs = append(s.dirs, dirTime{e.Name, e.MTime})
		}
		return nil
	}
	defer unix.Close(parent)
	switch e.Type() {
	case initramfs.TypeDir:
		clear(parent, base, unix.S_IFDIR)
		unix.Mkdirat(parent, base, 0o700)
		fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		s.chown(fd, "", e, unix.AT_EMPTY_PATH)
		unix.Fchmod(fd, e.Mode&0o7777)
		unix.Close(fd)
		s.dirs = append(s.dirs, dirTime{e.Name, e.MTime})
	case initramfs.TypeRegular:
		return s.file(parent, base, e, data)
	case initramfs.TypeSymlink:
		clear(parent, base, unix.S_IFLNK)
		if unix.Symlinkat(e.Target, parent, base) != nil {
			return nil
		}
		s.chown(parent, base, e, unix.AT_SYMLINK_NOFOLLOW)
		unix.UtimesNanoAt(parent, base, mtime(e), unix.AT_SYMLINK_NOFOLLOW)
	case initramfs.TypeFIFO, initramfs.TypeSocket:
		clear(parent, base, e.Type())
		if e.LinkTo != "" && s.link(e.LinkTo, parent, base) {
			return nil
		}
		if unix.Mknodat(parent, base, e.Type()|0o600, 0) != nil {
			return nil
		}
		s.chown(parent, base, e, unix.AT_SYMLINK_NOFOLLOW)
		unix.Fchmodat(parent, base, e.Mode&0o7777, 0)
		unix.UtimesNanoAt(parent, base, mtime(e), unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// link makes base in parent a hard link of the earlier member old.
func (s *sink) link(old string, parent int, base string) bool {
	op, obase, whole, err := s.split(old)
	if err != nil {
		return false
	}
	if whole >= 0 {
		unix.Close(whole)
		return false
	}
	defer unix.Close(op)
	return unix.Linkat(op, obase, parent, base, 0) == nil
}

// file makes a regular file (or a further name of one) and writes its data.
func (s *sink) file(parent int, base string, e *initramfs.Entry, data io.Reader) error {
	clear(parent, base, unix.S_IFREG)
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if e.LinkTo != "" {
		unix.Unlinkat(parent, base, 0)
		if !s.link(e.LinkTo, parent, base) {
			flags |= unix.O_TRUNC
		}
	} else {
		flags |= unix.O_TRUNC
	}
	fd, err := unix.Openat(parent, base, flags, 0o600)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	s.chown(fd, "", e, unix.AT_EMPTY_PATH)
	unix.Fchmod(fd, e.Mode&0o7777)
	if _, err := io.Copy(f, data); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) { // the write failed (the rootfs is full)
			return initramfs.ErrWrite
		}
		return err // the image's fault
	}
	unix.UtimesNanoAt(fd, "", mtime(e), unix.AT_EMPTY_PATH)
	return nil
}

// EndArchive sets the mtimes of the archive's directories, now that
// nothing more is made in them.
func (s *sink) EndArchive() error {
	for i := len(s.dirs) - 1; i >= 0; i-- {
		d := s.dirs[i]
		parent, base, whole, err := s.split(d.name)
		if err != nil {
			continue
		}
		t := unix.Timespec{Sec: int64(d.mtime)}
		if whole >= 0 {
			unix.UtimesNanoAt(whole, "", []unix.Timespec{t, t}, unix.AT_EMPTY_PATH)
			unix.Close(whole)
			continue
		}
		unix.UtimesNanoAt(parent, base, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(parent)
	}
	s.dirs = s.dirs[:0]
	return nil
}

// report logs one line for each kind of member that was not made as the
// image asked.
func (s *sink) report() {
	if n := len(s.devices); n > 0 {
		list := s.devices
		if n > 4 {
			list = append(list[:4:4], "...")
		}
		s.logf("initramfs: %d device node%s not made (a user namespace cannot make them; the machine's /dev has its devices): %s",
			n, plural(n), strings.Join(list, " "))
	}
	if s.unmapped > 0 {
		s.logf("initramfs: %d member%s kept as root: %s owner is not mapped in this machine", s.unmapped, plural(s.unmapped),
			map[bool]string{true: "their", false: "its"}[s.unmapped > 1])
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

var _ initramfs.Sink = (*sink)(nil)
