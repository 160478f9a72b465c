//go:build linux

package ubd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/atomicfile"
	"github.com/umlkit/umlkit/internal/cow"
	"github.com/umlkit/umlkit/internal/sys"
)

// CreateOptions tune CreateCOW.
type CreateOptions struct {
	// Force replaces an existing COW file (uml_mkcow -f). The new file never
	// inherits the old one's bitmap or data (the real tool's -f does).
	Force bool
}

// CreateError is a failure to build the header of a new COW file. Detail is
// the line the C code prints on stdout (e.g. `absolutize : Can't cd to
// '/x/y' - errno = 2`); Errno is what uml_mkcow then reports as
// "write_cow_header: <strerror>".
type CreateError struct {
	Detail string
	Errno  syscall.Errno
}

func (e *CreateError) Error() string { return e.Detail }
func (e *CreateError) Unwrap() error { return e.Errno }

// Absolutize returns the name the kernel and uml_mkcow store for a backing
// file (shared/spec/cow.md §5): the directory part resolved physically (as
// chdir+getcwd would), the last component kept as given; a name without '/'
// is joined to the current directory without any existence check.
func Absolutize(name string) (string, error) {
	cwd, err := unix.Getwd()
	if err != nil {
		return "", &CreateError{Detail: fmt.Sprintf("absolutize : unable to get cwd - errno = %d", int(sys.ErrnoOf(err, syscall.EINVAL))), Errno: syscall.EINVAL}
	}
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return joinSlash(cwd, name), nil
	}
	dir, base := name[:i], name[i+1:]
	if dir == "" {
		dir = "/" // the C code fails here (chdir("")); we resolve the root
	}
	if !filepath.IsAbs(dir) {
		dir = cwd + "/" + dir
	}
	phys, err := physicalDir(dir)
	if err != nil {
		return "", &CreateError{Detail: fmt.Sprintf("absolutize : Can't cd to '%s' - errno = %d", name, int(sys.ErrnoOf(err, syscall.EINVAL))), Errno: syscall.EINVAL}
	}
	return joinSlash(phys, base), nil
}

func joinSlash(dir, base string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + base
	}
	return dir + "/" + base
}

// physicalDir resolves dir the way chdir(dir)+getcwd() does, without changing
// this process's working directory: open it as a directory and ask the
// kernel for the path of the open file.
func physicalDir(dir string) (string, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || !filepath.IsAbs(p) {
		return filepath.EvalSymlinks(dir)
	}
	return p, nil
}

// NewHeader builds the v3 header a new COW file over backing gets: absolute
// backing name, its st_mtime (low 32 bits) and size, 512/4096.
func NewHeader(backing string) (*cow.Header, error) {
	if len(backing) > cow.MaxBackingLen {
		return nil, &CreateError{Detail: fmt.Sprintf("Backing file name \"%s\" is too long - names are limited to %d characters", backing, cow.MaxBackingLen), Errno: syscall.EINVAL}
	}
	abs, err := Absolutize(backing)
	if err != nil {
		return nil, err
	}
	if len(abs) > cow.MaxBackingLen {
		return nil, &CreateError{Detail: fmt.Sprintf("Backing file name \"%s\" is too long - names are limited to %d characters", abs, cow.MaxBackingLen), Errno: syscall.EINVAL}
	}
	f, err := os.Open(abs)
	var size, mtime int64
	if err == nil {
		size, mtime, err = fileSizeMtime(f)
		f.Close()
	}
	if err != nil {
		// The C helper returns -1 for any stat failure: "err = 1", EPERM.
		return nil, &CreateError{Detail: fmt.Sprintf("write_cow_header - backing file '%s' mtime request failed, err = 1", abs), Errno: syscall.EPERM}
	}
	return cow.New(abs, mtime, size)
}

// CreateCOW creates the COW file name over backing, as uml_mkcow and the
// kernel do (shared/spec/cow.md §5): a v3 header, an all-clear bitmap and a
// sparse data area; file length DataOffset+size, mode 0644. The file appears
// atomically and complete: it is built under a temporary name and linked (or,
// with Force, renamed) into place. Without Force an existing name fails with
// an error satisfying errors.Is(err, os.ErrExist), checked before anything
// else; failures to create the file are *OpError ("open COW file: ..."),
// header problems are *CreateError.
func CreateCOW(name, backing string, o CreateOptions) error {
	if !o.Force {
		if _, err := os.Lstat(name); err == nil {
			return &OpError{"open COW file", &os.PathError{Op: "open", Path: name, Err: syscall.EEXIST}}
		}
	}
	if target, err := filepath.EvalSymlinks(name); err == nil && o.Force {
		name = target // -f writes through a symlink, as open(2) would
	}
	af, err := atomicfile.New(name, 0o644)
	if err != nil {
		return &OpError{"open COW file", err}
	}
	defer af.Cancel()
	h, err := NewHeader(backing)
	if err != nil {
		return err
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := af.WriteAt(b, 0); err != nil {
		return err
	}
	if err := af.Truncate(h.FileLen()); err != nil {
		return err
	}
	if o.Force {
		err = af.Commit()
	} else {
		err = af.CommitNoReplace()
	}
	if errors.Is(err, os.ErrExist) {
		return &OpError{"open COW file", err}
	}
	return err
}
