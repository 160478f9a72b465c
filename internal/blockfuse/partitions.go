//go:build linux

package blockfuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/parttable"
)

// Partition is one exported partition of a disk.
type Partition struct {
	Name   string // file name (ubdb1)
	Number int
	Start  int64 // bytes from the start of the disk
	Size   int64 // bytes
}

// ScanResult is what a partition scan of a disk found and changed.
type ScanResult struct {
	// Log are the lines Linux prints for the table (parttable.LogLines):
	// given for an explicit Rescan, and for an automatic one only when
	// the partitions changed.
	Log []string
	// Removed and Added are the partitions that went and came (a
	// partition whose place changed is in both).
	Removed, Added []Partition
	// Kind is the table found.
	Kind parttable.Kind
}

// ErrNotPartitionable is returned by Rescan for a name that has no
// partitions of its own (a partition, a loop file, an export without
// EnablePartitions): BLKRRPART's EINVAL.
var ErrNotPartitionable = errors.New("not a partitionable disk")

// busyWait is how long a rescan waits for partition handles that are
// being released: FUSE delivers RELEASE after close(2) returns, so a
// partition closed just before a rescan may still count as open.
const busyWait = 200 * time.Millisecond

// EnablePartitions reads the partition table of every exported disk and
// exports the partitions it finds; a disk added later gets its partitions
// with Rescan. onScan, if not nil, is called after every scan that has something
// to report (also for the first ones, from within this call), with the
// disk's scan lock held: the partitions' files exist when it runs, and no
// other scan of that disk can interleave.
func (s *Server) EnablePartitions(onScan func(disk string, r ScanResult)) {
	s.mu.Lock()
	s.parts = true
	s.onScan = onScan
	s.mu.Unlock()
	for _, f := range s.disks() {
		s.rescan(f, true)
	}
}

// disks returns the exported disks (not partitions, not Cached names).
func (s *Server) disks() []*file {
	var out []*file
	for _, ch := range s.root.Children() {
		if n, ok := ch.Operations().(*diskNode); ok && !n.cached && n.f.parent == nil {
			out = append(out, n.f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Partitions returns the partitions exported for disk name, by number.
func (s *Server) Partitions(name string) []Partition {
	n, ok := s.node(name)
	if !ok || n.f.parent != nil {
		return nil
	}
	n.f.scanMu.Lock()
	defer n.f.scanMu.Unlock()
	return partitionsOf(n.f.parts)
}

func partitionsOf(files []*file) []Partition {
	out := make([]Partition, 0, len(files))
	for _, p := range files {
		out = append(out, Partition{Name: p.name, Number: p.number, Start: p.start, Size: p.d.Size()})
	}
	return out
}

// Rescan reads disk name's partition table again and exports what it
// finds (Linux's BLKRRPART). It fails with ErrBusy while a partition of the
// disk is open, and with ErrNotPartitionable for a name that is not a disk
// of an export with EnablePartitions.
func (s *Server) Rescan(name string) (ScanResult, error) {
	n, ok := s.node(name)
	if !ok {
		return ScanResult{}, ErrNotExist
	}
	if n.f.parent != nil {
		return ScanResult{}, ErrNotPartitionable
	}
	return s.rescan(n.f, true)
}

// rescan reads f's table and replaces the partitions that changed.
// explicit scans always report; the automatic one (after a write) only
// when something changed, and it does not wait for a busy disk.
func (s *Server) rescan(f *file, explicit bool) (ScanResult, error) {
	s.mu.Lock()
	enabled, onScan := s.parts, s.onScan
	s.mu.Unlock()
	if !enabled {
		return ScanResult{}, ErrNotPartitionable
	}
	f.scanMu.Lock()
	defer f.scanMu.Unlock()
	if f.gone.Load() {
		return ScanResult{}, ErrNotExist
	}
	if explicit {
		for deadline := time.Now().Add(busyWait); f.partOpens.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if f.partOpens.Load() > 0 {
		return ScanResult{}, ErrBusy
	}
	size := f.d.Size()
	tab, err := parttable.Read(f.d, uint64(size)/parttable.SectorSize)
	if err != nil {
		return ScanResult{}, fmt.Errorf("read the partition table of %s: %w", f.name, err)
	}
	want := map[int]parttable.Partition{}
	for _, p := range tab.Parts {
		want[p.Number] = p
	}
	var keep, drop []*file
	for _, p := range f.parts {
		w, ok := want[p.number]
		if ok && int64(w.Start)*parttable.SectorSize == p.start && int64(w.Sectors)*parttable.SectorSize == p.d.Size() {
			keep = append(keep, p)
			delete(want, p.number)
		} else {
			drop = append(drop, p)
		}
	}
	r := ScanResult{Kind: tab.Kind}
	if explicit || len(drop) > 0 || len(want) > 0 {
		r.Log = tab.LogLines(f.name)
	}
	r.Removed = s.dropPartitions(f, drop)
	f.parts = keep
	for _, p := range tab.Parts {
		if _, ok := want[p.Number]; !ok {
			continue
		}
		pf := s.addPartition(f, p)
		f.parts = append(f.parts, pf)
		r.Added = append(r.Added, partitionsOf([]*file{pf})...)
	}
	sortFiles(f.parts)
	if onScan != nil && (r.Log != nil || r.Removed != nil || r.Added != nil) {
		onScan(f.name, r)
	}
	return r, nil
}

func sortFiles(fs []*file) {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].number < fs[j-1].number; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

// dropPartitions unexports the partitions of f in drop and returns them.
// f.scanMu is held.
func (s *Server) dropPartitions(f *file, drop []*file) []Partition {
	if len(drop) == 0 {
		return nil
	}
	for _, p := range drop {
		s.unexport(p.name, p)
	}
	return partitionsOf(drop)
}

// addPartition exports partition p of disk f as a window of it, with
// DefaultAttr. f.scanMu is held.
func (s *Server) addPartition(f *file, p parttable.Partition) *file {
	name := parttable.PartName(f.name, p.Number)
	w := &window{d: f.d, off: int64(p.Start) * parttable.SectorSize, size: int64(p.Sectors) * parttable.SectorSize}
	pf := &file{name: name, d: w, attr: s.usable(DefaultAttr), parent: f, number: p.Number, start: w.off}
	if old := s.root.GetChild(name); old != nil {
		// Not one of f's (a name can only be f's), but never leave two.
		s.root.RmChild(name)
		s.root.NotifyDelete(name, old)
	}
	s.root.AddChild(name, s.newInode(context.Background(), pf, false), true)
	s.root.NotifyEntry(name) // forget a cached "does not exist"
	return pf
}

// window is a partition's view of its disk: bytes [off, off+size). The
// table was read against the disk's size, and every access is checked
// again here, so no offset a caller gives reaches outside the window.
type window struct {
	d         Disk
	off, size int64
}

var errOutside = errors.New("access outside the partition")

func (w *window) span(off int64, n int) (int, error) {
	if off < 0 || off > w.size {
		return 0, errOutside
	}
	if int64(n) > w.size-off {
		n = int(w.size - off)
	}
	return n, nil
}

func (w *window) ReadAt(p []byte, off int64) (int, error) {
	n, err := w.span(off, len(p))
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return w.d.ReadAt(p[:n], w.off+off)
}

func (w *window) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.span(off, len(p))
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return 0, errOutside
	}
	return w.d.WriteAt(p, w.off+off)
}

func (w *window) Size() int64    { return w.size }
func (w *window) Flush() error   { return w.d.Flush() }
func (w *window) ReadOnly() bool { return w.d.ReadOnly() }

func (w *window) Discard(off, n int64) error {
	if off < 0 || n < 0 || off > w.size || n > w.size-off {
		return errOutside
	}
	return w.d.Discard(w.off+off, n)
}

// zeroOut makes [off, off+n) of d read as zeros: a discard where the disk
// can (the ubd driver's reads back as zeros), written zeros otherwise.
func zeroOut(d Disk, off, n int64) error {
	if off < 0 || n < 0 || off > d.Size() || n > d.Size()-off {
		return errOutside
	}
	if discardZeroes(d) {
		if err := d.Discard(off, n); err == nil {
			return nil
		}
	}
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := d.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// Zeroing is the optional ability of a Disk whose Discard leaves zeros
// (internal/ubd.Disk); other disks get written zeros.
type Zeroing interface {
	DiscardZeroes() bool
}

func discardZeroes(d Disk) bool {
	if w, ok := d.(*window); ok {
		return discardZeroes(w.d)
	}
	z, ok := d.(Zeroing)
	return ok && z.DiscardZeroes()
}

// Device is an exported file as the block-device ioctls see it (K answers
// a guest's BLKGETSIZE64, BLKDISCARD, BLKRRPART, ... on it).
type Device struct {
	s *Server
	n *diskNode
}

// Device returns the exported file with device number dev and inode ino
// (what fstat of a guest's descriptor says), if it is one of this export.
func (s *Server) Device(dev, ino uint64) (Device, bool) {
	if dev != s.dev {
		return Device{}, false
	}
	s.mu.Lock()
	n, ok := s.byIno[ino]
	s.mu.Unlock()
	if !ok || n.f.gone.Load() {
		return Device{}, false
	}
	return Device{s, n}, true
}

// Name is the disk's or partition's name.
func (d Device) Name() string { return d.n.f.name }

// Size is its size in bytes.
func (d Device) Size() int64 { return d.n.f.d.Size() }

// ReadOnly reports a read-only disk.
func (d Device) ReadOnly() bool { return d.n.f.d.ReadOnly() }

// Partition reports whether it is a partition.
func (d Device) Partition() bool { return d.n.f.parent != nil }

// StartSector is a partition's first sector on its disk (0 for a disk).
func (d Device) StartSector() uint64 { return uint64(d.n.f.start) / parttable.SectorSize }

// DiskSize is the size of the whole disk (its own for a disk).
func (d Device) DiskSize() int64 {
	if p := d.n.f.parent; p != nil {
		return p.d.Size()
	}
	return d.Size()
}

// Discard discards a range (BLKDISCARD); EBUSY while the host kernel has
// the disk mounted, EOPNOTSUPP for a disk that may not discard.
func (d Device) Discard(off, n int64) error {
	if err := d.writable(); err != nil {
		return err
	}
	if err := d.n.f.d.Discard(off, n); err != nil {
		if errors.Is(err, errOutside) {
			return syscall.EINVAL
		}
		return syscall.EOPNOTSUPP
	}
	return nil
}

// ZeroOut makes a range read as zeros (BLKZEROOUT).
func (d Device) ZeroOut(off, n int64) error {
	if err := d.writable(); err != nil {
		return err
	}
	if err := zeroOut(d.n.f.d, off, n); err != nil {
		if errors.Is(err, errOutside) {
			return syscall.EINVAL
		}
		return syscall.EIO
	}
	return nil
}

func (d Device) writable() error {
	switch {
	case d.n.f.d.ReadOnly():
		return syscall.EPERM
	case d.n.f.isMounted():
		return syscall.EBUSY
	case d.n.f.gone.Load():
		return syscall.ENXIO
	}
	return nil
}

// Flush makes the written data durable (BLKFLSBUF, fsync).
func (d Device) Flush() error { return d.n.f.d.Flush() }

// Rescan reads the partition table again (BLKRRPART): ErrNotPartitionable
// for a partition or a name without partitions, ErrBusy while a partition
// is open.
func (d Device) Rescan() (ScanResult, error) {
	if d.n.f.parent != nil {
		return ScanResult{}, ErrNotPartitionable
	}
	return d.s.rescan(d.n.f, true)
}
