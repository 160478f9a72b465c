//go:build linux

// Package blockfuse exports ubd disks as regular files through a small
// go-fuse filesystem (one file per disk: ubda, ubdb, …), so that the guest's
// /dev/ubdX — and fuse2fs when the root is a COW disk — read and write
// through the ubd driver, COW included.
//
// Files are opened with FOPEN_DIRECT_IO: every access reaches the driver, so
// the guest's view and the driver's never disagree. A file's size is the
// disk's size and cannot change. Flush and fsync call Disk.Flush;
// FALLOC_FL_PUNCH_HOLE calls Disk.Discard.
//
// Cached adds a second name for a disk whose opens use the host's page
// cache with write-back (readahead, and fuse2fs's many one-block reads and
// writes gathered into large requests). It is meant for the single opener
// that owns the disk's contents — fuse2fs serving a COW root — and is
// coherent with the direct name only through fsync or sync(2), like a
// mounted file system and its block device.
//
// Lifetime: Mount returns a Server; Close unmounts (waiting for the kernel to
// release the filesystem) but does not close the disks, which the caller owns.
// Add and Remove change the export while it is mounted (mconsole hot-plug);
// Remove refuses a disk that is open.
package blockfuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Disk is what blockfuse needs of a block device (internal/ubd.Disk has it).
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Flush() error
	ReadOnly() bool
	Discard(off, n int64) error
}

// Server is a mounted export.
type Server struct {
	srv  *fuse.Server
	dir  string
	root *fs.Inode
}

// ErrBusy is returned by Remove for a disk that is open.
var ErrBusy = errors.New("device is open")

// ErrNotExist is returned by Remove for a name that is not exported.
var ErrNotExist = errors.New("no such device")

// Mount exports disks (name → disk) as files in dir.
func Mount(dir string, disks map[string]Disk) (*Server, error) {
	root := &fs.Inode{}
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			FsName:            "ubd",
			Name:              "ubd",
			DirectMount:       true,
			DirectMountStrict: true,
			MaxWrite:          1 << 20,
			// Only opens of a Cached name use the page cache; the
			// others are FOPEN_DIRECT_IO and bypass it.
			ExtraCapabilities: fuse.CAP_WRITEBACK_CACHE,
			DisableXAttrs:     true,
			// go-fuse reports recoverable events (a splice that falls
			// back to a copy) through its logger; they are not the
			// guest's business and must not reach its console.
			Logger: log.New(io.Discard, "", 0),
		},
		OnAdd: func(ctx context.Context) {
			for name, d := range disks {
				ch := root.NewPersistentInode(ctx, newDiskNode(d), fs.StableAttr{Mode: syscall.S_IFREG})
				root.AddChild(name, ch, true)
			}
		},
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount ubd export on %s: %w", dir, err)
	}
	return &Server{srv: srv, dir: dir, root: root}, nil
}

// Add exports d as name; an existing name is an error.
func (s *Server) Add(name string, d Disk) error {
	ch := s.root.NewPersistentInode(context.Background(), newDiskNode(d), fs.StableAttr{Mode: syscall.S_IFREG})
	if !s.root.AddChild(name, ch, false) {
		return fmt.Errorf("%s is already exported", name)
	}
	s.root.NotifyEntry(name) // forget a cached "does not exist"
	return nil
}

// CachedName is the name under which Cached exports the disk name.
func CachedName(name string) string { return "." + name + ".cached" }

// Cached exports the disk name a second time, as CachedName(name), with the
// host's page cache and write-back, and returns the new file's path (an
// existing one is reused). Data written through it reaches the disk at
// fsync, at the last close, at sync(2), or by the kernel's write-back.
func (s *Server) Cached(name string) (string, error) {
	ch := s.root.GetChild(name)
	if ch == nil {
		return "", ErrNotExist
	}
	n, ok := ch.Operations().(*diskNode)
	if !ok || n.cached {
		return "", ErrNotExist
	}
	alias := CachedName(name)
	if s.root.GetChild(alias) == nil {
		cn := &diskNode{d: n.d, opens: n.opens, cached: true}
		cch := s.root.NewPersistentInode(context.Background(), cn, fs.StableAttr{Mode: syscall.S_IFREG})
		if !s.root.AddChild(alias, cch, false) {
			return "", fmt.Errorf("%s is already exported", alias)
		}
		s.root.NotifyEntry(alias)
	}
	return filepath.Join(s.dir, alias), nil
}

// Remove unexports name (and its Cached name) unless either is open
// (ErrBusy). The disk is not closed: it belongs to the caller.
func (s *Server) Remove(name string) error {
	ch := s.root.GetChild(name)
	if ch == nil {
		return ErrNotExist
	}
	if n, ok := ch.Operations().(*diskNode); ok && n.opens.Load() > 0 {
		return ErrBusy
	}
	s.root.RmChild(name)
	s.root.NotifyDelete(name, ch)
	alias := CachedName(name)
	if ach := s.root.GetChild(alias); ach != nil {
		s.root.RmChild(alias)
		s.root.NotifyDelete(alias, ach)
	}
	return nil
}

// Close unmounts the export and waits for the server loop to end.
func (s *Server) Close() error {
	err := s.srv.Unmount()
	s.srv.Wait()
	return err
}

type diskNode struct {
	fs.Inode
	d      Disk
	opens  *atomic.Int32 // open file handles of the disk's names, for Remove
	cached bool          // the page-cached name (Server.Cached)
}

func newDiskNode(d Disk) *diskNode { return &diskNode{d: d, opens: new(atomic.Int32)} }

var (
	_ fs.NodeGetattrer = (*diskNode)(nil)
	_ fs.NodeSetattrer = (*diskNode)(nil)
	_ fs.NodeOpener    = (*diskNode)(nil)
	_ fs.NodeReader    = (*diskNode)(nil)
	_ fs.NodeWriter    = (*diskNode)(nil)
	_ fs.NodeFsyncer   = (*diskNode)(nil)
	_ fs.NodeFlusher   = (*diskNode)(nil)
	_ fs.NodeAllocater = (*diskNode)(nil)
	_ fs.NodeReleaser  = (*diskNode)(nil)
)

func (n *diskNode) attr(out *fuse.Attr) {
	out.Mode = syscall.S_IFREG | 0o660
	if n.d.ReadOnly() {
		out.Mode = syscall.S_IFREG | 0o440
	}
	out.Size = uint64(n.d.Size())
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 4096
	out.Nlink = 1
}

// cachedAttrTimeout is how long the kernel keeps a Cached name's attributes
// (a disk's size never changes). In write-back mode the kernel checks them
// before every write; with no timeout each fuse2fs block write would cost
// a GETATTR round trip.
const cachedAttrTimeout = time.Hour

func (n *diskNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	if n.cached {
		out.SetTimeout(cachedAttrTimeout)
	}
	return 0
}

func (n *diskNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && int64(sz) != n.d.Size() {
		return syscall.EPERM // a disk's size is fixed
	}
	n.attr(&out.Attr)
	return 0
}

func (n *diskNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.d.ReadOnly() && flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	n.opens.Add(1)
	// A handle (even an empty one) makes go-fuse deliver Release.
	if n.cached {
		// Page-cached; each open starts afresh (no FOPEN_KEEP_CACHE),
		// so writes through the direct name before it are seen.
		return &diskHandle{}, 0, 0
	}
	return &diskHandle{}, fuse.FOPEN_DIRECT_IO, 0
}

// diskHandle is an open file of a disk; it only lets Release be counted.
type diskHandle struct{}

func (n *diskNode) Release(ctx context.Context, f fs.FileHandle) syscall.Errno {
	n.opens.Add(-1)
	return 0
}

func (n *diskNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	size := n.d.Size()
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	if int64(len(dest)) > size-off {
		dest = dest[:size-off]
	}
	if _, err := n.d.ReadAt(dest, off); err != nil && err != io.EOF {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest), 0
}

func (n *diskNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.d.ReadOnly() {
		return 0, syscall.EROFS
	}
	size := n.d.Size()
	if off >= size {
		return 0, syscall.ENOSPC
	}
	if int64(len(data)) > size-off {
		data = data[:size-off]
	}
	w, err := n.d.WriteAt(data, off)
	if err != nil {
		return uint32(w), errno(err)
	}
	return uint32(w), 0
}

func (n *diskNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return errno(n.d.Flush())
}

func (n *diskNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno { return 0 }

const fallocPunchHole = 0x02

func (n *diskNode) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if mode&fallocPunchHole != 0 {
		return errno(n.d.Discard(int64(off), int64(size)))
	}
	return 0 // space is the driver's business
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
