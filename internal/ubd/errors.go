//go:build linux

package ubd

import (
	"errors"

	"github.com/umlkit/umlkit/internal/sys"
)

// Sentinel errors of the package; compare with errors.Is.
var (
	// ErrLocked: another process holds a conflicting fcntl lock on a disk file.
	ErrLocked = errors.New("file already locked")
	// ErrReadOnly: a write to a disk opened read-only.
	ErrReadOnly = errors.New("read-only disk")
	// ErrOutOfRange: I/O beyond the end of the device.
	ErrOutOfRange = errors.New("access beyond the end of the device")
	// ErrClosed: the disk was closed.
	ErrClosed = errors.New("disk closed")
	// ErrCOWAndNoCOW: the 'd' flag together with a COW file (Options.NoCOW and Options.Backing).
	ErrCOWAndNoCOW = errors.New("can't specify both 'd' and a cow file")
	// ErrNoTrim: Discard on a disk opened with NoTrim (the 't' flag).
	ErrNoTrim = errors.New("discard disabled ('t' flag)")
	// ErrTruncatedBitmap: the COW file ends inside its bitmap.
	ErrTruncatedBitmap = errors.New("COW bitmap is truncated")
)

// OpError is an error of one step of a tool, printed the way the C tools'
// perror(3) does: "<Op>: <sys.Strerror(Err)>" (e.g. "COW file open: No such file or directory").
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return e.Op + ": " + sys.Strerror(e.Err) }
func (e *OpError) Unwrap() error { return e.Err }
