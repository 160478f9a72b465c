//go:build linux

package ubd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an fcntl lock on the whole of f: a write lock when write is
// set, else a read lock, without waiting. It uses open-file-description locks
// (F_OFD_SETLK), which conflict with the classic F_SETLK locks the real UML
// takes but, unlike them, are not dropped when another descriptor of the same
// file is closed inside this process; it falls back to F_SETLK on kernels
// without OFD locks. A conflict returns an error wrapping ErrLocked that
// names the holder's pid when the kernel reports it.
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
		pid := int32(-1)
		if unix.FcntlFlock(f.Fd(), unix.F_GETLK, &q) == nil && q.Type != unix.F_UNLCK {
			pid = q.Pid
		}
		return &LockError{File: f.Name(), Pid: int(pid)}
	}
	return &os.PathError{Op: "fcntl F_SETLK", Path: f.Name(), Err: err}
}

// LockError: a disk file is locked by another process (pid -1: unknown, e.g.
// an open-file-description lock).
type LockError struct {
	File string
	Pid  int
}

func (e *LockError) Error() string {
	return fmt.Sprintf("F_SETLK failed, file already locked by pid %d: failed to lock '%s'", e.Pid, e.File)
}

func (e *LockError) Unwrap() error { return ErrLocked }
