//go:build linux

package sys

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FilePair returns a close-on-exec unix socket pair of type typ
// (unix.SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET) as two files named a and
// b. The files are blocking and not on the runtime poller; wrap them with
// net.FileConn or Pollable for deadlines.
func FilePair(typ int, a, b string) (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), a), os.NewFile(uintptr(fds[1]), b), nil
}

// Pollable returns f as a non-blocking file named name on the runtime
// poller, so a deadline or Close ends a read in progress, and closes f.
//
// A descriptor inherited through exec is blocking (os/exec's Fd makes it
// so), and a file os.NewFile makes from a blocking descriptor is not
// pollable; so f's descriptor is duplicated (close-on-exec, numbered 3 or
// above, keeping clear of stdio), the duplicate set non-blocking and
// wrapped anew. O_NONBLOCK belongs to the open file description, which the
// duplicate shares with f and with any other process holding it. A file the
// poller cannot take (a regular file, /dev/null) comes back usable, without
// deadlines. On error f is left open and still the caller's.
func Pollable(f *os.File, name string) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	f.Close()
	return os.NewFile(uintptr(nfd), name), nil
}

// RmdirTree removes dir and every directory below it, children first, with
// rmdir(2) only: for trees whose directories vanish with their interface
// files, like cgroups. A directory that cannot go stays (errors ignored).
func RmdirTree(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			RmdirTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}
