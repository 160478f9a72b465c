//go:build linux

// Package blockfuse exports ubd disks as regular files through a small
// go-fuse filesystem (one file per disk: ubda, ubdb, …), so that the guest's
// /dev/ubdX — and fuse2fs when the root is a COW disk — read and write
// through the ubd driver, COW included.
//
// Files are opened with FOPEN_DIRECT_IO: every access reaches the driver, so
// the guest's view and the driver's never disagree. A file's size is the
// disk's size and cannot change. fsync calls Disk.Flush;
// FALLOC_FL_PUNCH_HOLE calls Disk.Discard where that leaves zeros
// (Zeroing) and fails with EOPNOTSUPP otherwise; FALLOC_FL_ZERO_RANGE
// zeroes the range (by a discard, or by writing zeros).
//
// Cached adds a second name for a disk whose opens use the host's page
// cache with write-back (readahead, and fuse2fs's many one-block reads and
// writes gathered into large requests). It is meant for the single opener
// that owns the disk's contents — fuse2fs serving a COW root — and is
// coherent with the direct name only through fsync or sync(2), like a
// mounted file system and its block device.
//
// Permissions: every file has an owner, a group and permission bits (Attr),
// root:disk 0660 unless the caller sets others (SetAttr), as devtmpfs and
// udev give block devices; chmod and chown change them in memory, as on a
// device node. The export is mounted with default_permissions, so the host
// kernel checks every open, chmod and chown against the caller's
// credentials in the user namespace that mounted the export — for K the
// guest's: guest uid, gid, supplementary groups and capabilities. Open and
// Setattr check again themselves (defence in depth, should the kernel's
// check ever be off), with the ids of the request and the groups and
// capabilities of /proc/PID/status; capabilities count only for a caller
// in the export's own user namespace. An id the mounting namespace does
// not map (a single-id map has no group disk) is shown as 0.
//
// Partitions (partitions.go): with EnablePartitions, each disk's partition
// table (internal/parttable) is exported as one more file per partition
// (ubdb1, ubdb5, ...), a window of its disk that can never reach outside
// it, with its own owner and mode and the same checks. The table is read
// again when the caller asks (Rescan: the guest's BLKRRPART) and when a
// handle that wrote to the whole disk is closed (as udev has Linux do after
// fdisk or sfdisk); either is refused while a partition is open.
//
// Lifetime: Mount returns a Server; Close unmounts (waiting for the kernel to
// release the filesystem) but does not close the disks, which the caller owns.
// Add and Remove change the export while it is mounted (mconsole hot-plug);
// Remove refuses a disk that is open, or one of whose partitions is.
//
// Locks: a disk's scanMu (held through a rescan and its hook) is taken
// before any file's mu and before Server.mu; nothing is taken after
// Server.mu.
package blockfuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/umlkit/umlkit/internal/sys"
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
	srv    *fuse.Server
	dir    string
	root   *fs.Inode
	userNS syscall.Stat_t // the mounting process's user namespace (dev, ino)
	// uids and gids are the ids the mounting user namespace maps; nil
	// when its maps could not be read (every id is then taken as mapped).
	uids, gids []idRange
	dev        uint64 // the export's device number (st_dev of its files)

	mu    sync.Mutex           // guards byIno, onScan, parts
	byIno map[uint64]*diskNode // every exported name by inode number
	// onScan is called after each partition scan (EnablePartitions);
	// parts is whether partitions are exported at all.
	onScan func(disk string, r ScanResult)
	parts  bool
}

// ErrBusy is returned by Remove for a disk that is open.
var ErrBusy = errors.New("device is open")

// ErrNotExist is returned by Remove for a name that is not exported.
var ErrNotExist = errors.New("no such device")

// Mount exports disks (name → disk) as files in dir, each with DefaultAttr.
func Mount(dir string, disks map[string]Disk) (*Server, error) {
	return mount(dir, disks, true)
}

// mount is Mount; kernelCheck=false leaves out default_permissions, so
// that tests can see the server's own checks at work.
func mount(dir string, disks map[string]Disk, kernelCheck bool) (*Server, error) {
	s := &Server{dir: dir, byIno: map[uint64]*diskNode{}}
	syscall.Stat("/proc/self/ns/user", &s.userNS)
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		s.uids = parseIDMap(b)
	}
	if b, err := os.ReadFile("/proc/self/gid_map"); err == nil {
		s.gids = parseIDMap(b)
	}
	rootDir := &dirNode{}
	s.root = &rootDir.Inode
	var options []string
	if kernelCheck {
		options = []string{"default_permissions"}
	}
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			Options:           options,
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
		// Mode 0 (chmod 000) is mode 0, not go-fuse's default 0644.
		NullPermissions: true,
		OnAdd: func(ctx context.Context) {
			for name, d := range disks {
				s.root.AddChild(name, s.newInode(ctx, s.newFile(name, d), false), true)
			}
		},
	}
	srv, err := fs.Mount(dir, rootDir, opts)
	if err != nil {
		return nil, fmt.Errorf("mount ubd export on %s: %w", dir, err)
	}
	s.srv = srv
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err == nil {
		s.dev = st.Dev
	}
	return s, nil
}

// usable replaces the ids of a that the mounting user namespace does not
// map by 0 (the kernel could show them only as the overflow id, and no
// guest process could hold them).
func (s *Server) usable(a Attr) Attr {
	if s.uids != nil && !mapped(s.uids, a.Uid) {
		a.Uid = 0
	}
	if s.gids != nil && !mapped(s.gids, a.Gid) {
		a.Gid = 0
	}
	a.Mode &= 0o7777
	return a
}

func (s *Server) newFile(name string, d Disk) *file {
	return &file{name: name, d: d, attr: s.usable(DefaultAttr)}
}

func (s *Server) newInode(ctx context.Context, f *file, cached bool) *fs.Inode {
	n := &diskNode{s: s, f: f, cached: cached}
	f.mu.Lock()
	f.nodes = append(f.nodes, n)
	f.mu.Unlock()
	in := s.root.NewPersistentInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG})
	s.mu.Lock()
	s.byIno[in.StableAttr().Ino] = n
	s.mu.Unlock()
	return in
}

// forget drops the inode numbers of f's names.
func (s *Server) forget(f *file) {
	f.mu.Lock()
	nodes := f.nodes
	f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range nodes {
		delete(s.byIno, n.StableAttr().Ino)
	}
}

// Add exports d as name, with DefaultAttr; an existing name is an error.
// Its partitions come with Rescan (the caller makes the disk's own name
// known first, as Linux announces a disk before its partitions).
func (s *Server) Add(name string, d Disk) error {
	if !s.root.AddChild(name, s.newInode(context.Background(), s.newFile(name, d), false), false) {
		return fmt.Errorf("%s is already exported", name)
	}
	s.root.NotifyEntry(name) // forget a cached "does not exist"
	return nil
}

// node returns the exported file name (a disk's name, not a Cached one).
func (s *Server) node(name string) (*diskNode, bool) {
	ch := s.root.GetChild(name)
	if ch == nil {
		return nil, false
	}
	n, ok := ch.Operations().(*diskNode)
	if !ok || n.cached {
		return nil, false
	}
	return n, true
}

// SetAttr sets the owner, group and permission bits of name (and of its
// Cached name), as chown and chmod by guest root would.
func (s *Server) SetAttr(name string, a Attr) error {
	n, ok := s.node(name)
	if !ok {
		return ErrNotExist
	}
	n.f.set(s.usable(a), nil)
	return nil
}

// SetMounted marks name as mounted by the host kernel (linux run as root
// mounts plain images natively, on a loop device of the host file): while
// it is, every write open of the disk's names, write and hole punch fails
// with EBUSY, as Linux refuses writes to a mounted block device when
// built without BLK_DEV_WRITE_MOUNTED. The host kernel's ext4 must never
// see its metadata changed under it by a guest (a guest-chosen errors=
// setting, or a crafted image, is the host's problem, unlike UML's).
func (s *Server) SetMounted(name string, mounted bool) error {
	n, ok := s.node(name)
	if !ok {
		return ErrNotExist
	}
	n.f.mounted.Store(mounted)
	return nil
}

// Attr returns the owner, group and permission bits of name.
func (s *Server) Attr(name string) (Attr, error) {
	n, ok := s.node(name)
	if !ok {
		return Attr{}, ErrNotExist
	}
	return n.f.get(), nil
}

// CachedName is the name under which Cached exports the disk name.
func CachedName(name string) string { return "." + name + ".cached" }

// Cached exports the disk name a second time, as CachedName(name), with the
// host's page cache and write-back, and returns the new file's path (an
// existing one is reused). Data written through it reaches the disk at
// fsync, at the last close, at sync(2), or by the kernel's write-back.
// It has the disk's owner, group and permission bits.
func (s *Server) Cached(name string) (string, error) {
	n, ok := s.node(name)
	if !ok {
		return "", ErrNotExist
	}
	alias := CachedName(name)
	if s.root.GetChild(alias) == nil {
		if !s.root.AddChild(alias, s.newInode(context.Background(), n.f, true), false) {
			return "", fmt.Errorf("%s is already exported", alias)
		}
		s.root.NotifyEntry(alias)
	}
	return filepath.Join(s.dir, alias), nil
}

// Remove unexports name (and its Cached name, and its partitions) unless
// any of them is open (ErrBusy). The disk is not closed: it belongs to the
// caller. The partitions removed are returned.
func (s *Server) Remove(name string) ([]Partition, error) {
	n, ok := s.node(name)
	if !ok || n.f.parent != nil {
		return nil, ErrNotExist
	}
	f := n.f
	f.scanMu.Lock()
	defer f.scanMu.Unlock()
	if f.opens.Load() > 0 || f.partOpens.Load() > 0 {
		return nil, ErrBusy
	}
	gone := s.dropPartitions(f, f.parts)
	f.parts = nil
	s.unexport(name, f)
	return gone, nil
}

// unexport removes name and its Cached name from the directory.
func (s *Server) unexport(name string, f *file) {
	f.gone.Store(true)
	s.forget(f)
	for _, nm := range []string{name, CachedName(name)} {
		if ch := s.root.GetChild(nm); ch != nil {
			s.root.RmChild(nm)
			s.root.NotifyDelete(nm, ch)
		}
	}
}

// Close unmounts the export and waits for the server loop to end.
func (s *Server) Close() error {
	err := s.srv.Unmount()
	s.srv.Wait()
	return err
}

// dirNode is the export's directory: root's, 0755 (what a caller may open
// is each file's business).
type dirNode struct{ fs.Inode }

var _ fs.NodeGetattrer = (*dirNode)(nil)

func (d *dirNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	out.Nlink = 2
	return 0
}

// file is what a disk's names (the direct one and its Cached one) share; a
// partition is a file too, whose d is a window of its parent's disk.
type file struct {
	name  string
	d     Disk
	opens atomic.Int32 // open file handles of the disk's names, for Remove
	// mounted: the host kernel has the disk's file system mounted (SetMounted):
	// write opens and writes fail with EBUSY.
	mounted atomic.Bool
	// gone: removed from the export (a partition a rescan dropped): no
	// open or I/O succeeds any more.
	gone atomic.Bool

	// A partition's disk, its number and its window (bytes); nil, 0 for
	// a disk.
	parent *file
	number int
	start  int64

	// A disk's partitions (guarded by scanMu) and their open handles.
	scanMu    sync.Mutex
	parts     []*file
	partOpens atomic.Int32

	mu    sync.Mutex  // guards attr, nodes
	attr  Attr        // owner, group, permission bits
	nodes []*diskNode // the disk's names
}

// isMounted reports whether the host kernel has f's disk mounted: a
// partition's writes are refused when its disk is.
func (f *file) isMounted() bool {
	return f.mounted.Load() || f.parent != nil && f.parent.mounted.Load()
}

func (f *file) get() Attr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attr
}

// set changes the attributes and makes the kernel forget those it holds
// for the disk's other names than from (a Cached name keeps them an hour).
func (f *file) set(a Attr, from *diskNode) {
	f.mu.Lock()
	f.attr = a
	nodes := f.nodes
	f.mu.Unlock()
	for _, n := range nodes {
		if n != from {
			n.NotifyContent(-1, 0) // a negative offset: attributes only
		}
	}
}

type diskNode struct {
	fs.Inode
	s      *Server
	f      *file
	cached bool // the page-cached name (Server.Cached)
}

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
	a := n.f.get()
	out.Mode = syscall.S_IFREG | a.Mode
	out.Uid, out.Gid = a.Uid, a.Gid
	out.Size = uint64(n.f.d.Size())
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
	if sz, ok := in.GetSize(); ok && int64(sz) != n.f.d.Size() {
		return syscall.EPERM // a disk's size is fixed
	}
	_, chown := in.GetUID()
	_, chgrp := in.GetGID()
	_, chmod := in.GetMode()
	if chown || chgrp || chmod {
		c, ok := n.s.caller(ctx, true)
		if !ok {
			return syscall.EPERM
		}
		n.f.mu.Lock()
		a := n.f.attr
		n.f.mu.Unlock()
		if !mayChange(a, c, in) {
			return syscall.EPERM
		}
		if uid, ok := in.GetUID(); ok {
			a.Uid = uid
		}
		if gid, ok := in.GetGID(); ok {
			a.Gid = gid
		}
		if mode, ok := in.GetMode(); ok {
			a.Mode = mode & 0o7777
		}
		n.f.set(a, n)
	}
	n.attr(&out.Attr)
	if n.cached {
		out.SetTimeout(cachedAttrTimeout)
	}
	return 0
}

// access checks an open for want with the caller's credentials: the ids
// of the request alone when the owner's bits decide, the supplementary
// groups and capabilities too otherwise.
func (n *diskNode) access(ctx context.Context, want uint32) bool {
	a := n.f.get()
	c, ok := n.s.caller(ctx, false)
	if !ok {
		return false
	}
	if c.uid == a.Uid || c.gid == a.Gid {
		if permits(a, c, want) {
			return true
		}
	}
	if c, ok = n.s.caller(ctx, true); !ok {
		return false
	}
	return permits(a, c, want)
}

func (n *diskNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if !n.access(ctx, openWant(flags)) {
		return nil, 0, syscall.EACCES
	}
	if n.f.d.ReadOnly() && flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.f.isMounted() && flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EBUSY
	}
	// Counted before the check, so that a rescan either sees the open
	// (and refuses) or has marked the partition gone first. An open that
	// loses that race gets ENXIO on its I/O. (No lock: K's rescan hook
	// may wait for a thread that is opening a partition.)
	if p := n.f.parent; p != nil {
		p.partOpens.Add(1)
	}
	n.f.opens.Add(1)
	if n.f.gone.Load() {
		n.f.opens.Add(-1)
		if p := n.f.parent; p != nil {
			p.partOpens.Add(-1)
		}
		return nil, 0, syscall.ENXIO
	}
	// A handle (even an empty one) makes go-fuse deliver Release.
	if n.cached {
		// Page-cached; each open starts afresh (no FOPEN_KEEP_CACHE),
		// so writes through the direct name before it are seen.
		return &diskHandle{}, 0, 0
	}
	return &diskHandle{}, fuse.FOPEN_DIRECT_IO, 0
}

// diskHandle is an open file of a disk.
type diskHandle struct {
	// wrote: data was written through the handle since its last flush
	// (a whole disk's partition table may have changed).
	wrote atomic.Bool
}

func (n *diskNode) Release(ctx context.Context, f fs.FileHandle) syscall.Errno {
	n.f.opens.Add(-1)
	if p := n.f.parent; p != nil {
		p.partOpens.Add(-1)
	}
	return 0
}

func (n *diskNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if n.f.gone.Load() {
		return nil, syscall.ENXIO
	}
	size := n.f.d.Size()
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	if int64(len(dest)) > size-off {
		dest = dest[:size-off]
	}
	if _, err := n.f.d.ReadAt(dest, off); err != nil && err != io.EOF {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest), 0
}

func (n *diskNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.f.d.ReadOnly() {
		return 0, syscall.EROFS
	}
	if n.f.isMounted() {
		return 0, syscall.EBUSY // a handle opened before the mount
	}
	if n.f.gone.Load() {
		return 0, syscall.ENXIO
	}
	size := n.f.d.Size()
	if off >= size {
		return 0, syscall.ENOSPC
	}
	if int64(len(data)) > size-off {
		data = data[:size-off]
	}
	if h, ok := f.(*diskHandle); ok {
		h.wrote.Store(true)
	}
	w, err := n.f.d.WriteAt(data, off)
	if err != nil {
		return uint32(w), errno(err)
	}
	return uint32(w), 0
}

func (n *diskNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return errno(n.f.d.Flush())
}

// Flush (every close(2) of a descriptor, before it returns) reads the
// partition table again when the handle wrote to a whole disk: what udev
// has Linux do when fdisk or sfdisk close a disk they wrote, so that the
// new partitions are there when the tool exits. A table that did not
// change costs one or two sector reads; a rescan refused because a
// partition is open leaves the old partitions (as Linux does).
func (n *diskNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno {
	if h, ok := f.(*diskHandle); ok && h.wrote.Swap(false) && n.f.parent == nil && !n.cached {
		n.s.rescan(n.f, false)
	}
	return 0
}

// fallocate modes (linux/falloc.h).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

func (n *diskNode) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if mode&(fallocPunchHole|fallocZeroRange) == 0 {
		return 0 // space is the driver's business
	}
	if n.f.isMounted() {
		return syscall.EBUSY
	}
	if n.f.gone.Load() {
		return syscall.ENXIO
	}
	if off > uint64(n.f.d.Size()) || size > uint64(n.f.d.Size())-off {
		return syscall.EINVAL // a disk's size is fixed
	}
	if mode&fallocPunchHole != 0 {
		// A hole must read as zeros: only a disk whose discard leaves
		// them (the ubd driver without the 't' flag) punches one; the
		// others say so, and tools fall back (to FALLOC_FL_ZERO_RANGE).
		if !discardZeroes(n.f.d) || n.f.d.Discard(int64(off), int64(size)) != nil {
			return syscall.EOPNOTSUPP
		}
		return 0
	}
	return errno(zeroOut(n.f.d, int64(off), int64(size)))
}

func errno(err error) syscall.Errno { return sys.ErrnoOf(err, syscall.EIO) }
