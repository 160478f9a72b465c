//go:build linux

package ubd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFile takes an fcntl lock on the whole of f: a write lock when write is
// set, else a read lock, without waiting. It uses open-file-description locks
// (F_OFD_SETLK), which conflict with the classic F_SETLK locks the real UML
// takes but, unlike them, are not dropped when another descriptor of the same
// file is closed inside this process; it falls back to F_SETLK on kernels
// without OFD locks. A conflict returns an error wrapping ErrLocked that
// names the holder's pid: F_GETLK reports it for a classic lock (the real
// UML's); for an OFD lock (another umlkit's) it says -1, and the holder is
// looked for among the open files in /proc.
func lockFile(f *os.File, write bool) error {
	typ := int16(unix.F_RDLCK)
	if write {
		typ = unix.F_WRLCK
	}
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EINVAL) {
		lk = unix.Flock_t{Type: typ}
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		q := unix.Flock_t{Type: typ}
		pid := 0
		if unix.FcntlFlock(f.Fd(), unix.F_GETLK, &q) == nil && q.Type != unix.F_UNLCK && q.Pid > 0 {
			pid = int(q.Pid)
		}
		if pid == 0 {
			pid = lockHolder("/proc", f, write)
		}
		return &LockError{File: f.Name(), Pid: pid}
	}
	return &os.PathError{Op: "fcntl F_SETLK", Path: f.Name(), Err: err}
}

// lockHolder returns the pid of a process holding a lock on f that
// conflicts with the one wanted (any lock when write, else a write lock),
// or 0 when none is found. /proc/locks says -1 for OFD locks, so it looks
// at the open files of every process it may see (proc is /proc): the
// fdinfo of a descriptor of the same file lists the locks held through it.
// Only called on the error path.
func lockHolder(proc string, f *os.File, write bool) int {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	pids, _ := os.ReadDir(proc)
	for _, pe := range pids {
		pid, err := strconv.Atoi(pe.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(proc, pe.Name(), "fd")
		fds, _ := os.ReadDir(fdDir)
		for _, fe := range fds {
			var fst unix.Stat_t
			if unix.Stat(filepath.Join(fdDir, fe.Name()), &fst) != nil || fst.Dev != st.Dev || fst.Ino != st.Ino {
				continue
			}
			info, err := os.ReadFile(filepath.Join(proc, pe.Name(), "fdinfo", fe.Name()))
			if err == nil && holdsConflicting(string(info), id, write) {
				return pid
			}
		}
	}
	return 0
}

// holdsConflicting reports whether an fdinfo text lists a POSIX or OFD
// lock on file id ("maj:min:ino" as /proc/locks writes it) that conflicts
// with a write (or, when !write, a read) lock.
func holdsConflicting(fdinfo, id string, write bool) bool {
	for _, l := range strings.Split(fdinfo, "\n") {
		rest, ok := strings.CutPrefix(l, "lock:")
		if !ok {
			continue
		}
		// "1: OFDLCK ADVISORY  WRITE -1 fe:00:9977923 0 EOF"
		fs := strings.Fields(rest)
		if len(fs) < 6 || fs[1] == "->" || (fs[1] != "POSIX" && fs[1] != "OFDLCK") || fs[5] != id {
			continue
		}
		if write || fs[3] == "WRITE" {
			return true
		}
	}
	return false
}

// LockError: a disk file is locked by another process (Pid 0: not known).
type LockError struct {
	File string
	Pid  int
}

// Holder names the lock's holder for messages: "pid N" as UML says it, or
// "another process".
func (e *LockError) Holder() string {
	if e.Pid > 0 {
		return "pid " + strconv.Itoa(e.Pid)
	}
	return "another process"
}

func (e *LockError) Error() string {
	return fmt.Sprintf("F_SETLK failed, file already locked by %s: failed to lock '%s'", e.Holder(), e.File)
}

func (e *LockError) Unwrap() error { return ErrLocked }
