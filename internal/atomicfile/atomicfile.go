// Package atomicfile writes a file so that readers see either the old
// contents or the complete new contents, never a half-written file: data is
// streamed into a temporary file in the destination's directory, fsynced, and
// renamed over (or linked to) the final name, then the directory is fsynced.
// Cancel removes the temporary file; nothing is left behind on failure.
//
// A *File is not safe for concurrent Commit/Cancel; its *os.File may be used
// for concurrent WriteAt as usual.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is a pending atomic write. Write through the embedded *os.File
// (Write, WriteAt, ReadFrom, Truncate, Fd for copy_file_range ...), then
// Commit or CommitNoReplace; call Cancel (deferred) in every case.
type File struct {
	*os.File
	path string // final name
	tmp  string // temporary name, "" once committed or cancelled
}

// New creates the temporary file for path with permissions perm (the umask
// applies, as with creat(2)). The temporary name is ".<base>.tmp-<random>"
// in path's directory.
func New(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	var rnd [6]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &File{File: f, path: path, tmp: tmp}, nil
	}
	return nil, fmt.Errorf("create temporary file for %s: too many collisions", path)
}

// Path returns the final name.
func (f *File) Path() string { return f.path }

// TempPath returns the temporary name ("" after Commit or Cancel).
func (f *File) TempPath() string { return f.tmp }

func (f *File) finish() error {
	if f.tmp == "" {
		return errors.New("atomicfile: already committed or cancelled")
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	return f.File.Close()
}

// Commit fsyncs the data, renames the temporary file over the final name
// (replacing any existing file) and fsyncs the directory. On error the
// temporary file is removed.
func (f *File) Commit() error {
	if err := f.finish(); err != nil {
		f.Cancel()
		return err
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		f.Cancel()
		return err
	}
	f.tmp = ""
	return syncDir(f.path)
}

// CommitNoReplace is Commit that fails with an error satisfying
// errors.Is(err, os.ErrExist) when the final name already exists (the
// temporary file is then removed). It links the temporary file to the final
// name, so the check and the creation are one atomic step.
func (f *File) CommitNoReplace() error {
	if err := f.finish(); err != nil {
		f.Cancel()
		return err
	}
	if err := os.Link(f.tmp, f.path); err != nil {
		f.Cancel()
		return err
	}
	os.Remove(f.tmp)
	f.tmp = ""
	return syncDir(f.path)
}

// Cancel closes and removes the temporary file. It is idempotent and a no-op
// after a successful Commit.
func (f *File) Cancel() error {
	if f.tmp == "" {
		return nil
	}
	f.File.Close()
	err := os.Remove(f.tmp)
	f.tmp = ""
	return err
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}
