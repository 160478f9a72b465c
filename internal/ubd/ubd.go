//go:build linux

// Package ubd is UML's block device on the host side: a disk image, or a
// backing file overlaid by a COW file, served at sector granularity; and the
// two whole-file operations of the COW tools, CreateCOW (uml_mkcow) and Merge
// (uml_moo).
//
// # API
//
//	d, err := ubd.Open(ubd.Options{File: "root.cow", Backing: "root.img"})
//	n, err := d.ReadAt(p, off)   // io.ReaderAt; concurrent-safe
//	n, err := d.WriteAt(p, off)  // io.WriterAt; concurrent-safe
//	err = d.Flush()              // fsync (guest flush / barrier)
//	err = d.Discard(off, n)      // TRIM: the range reads as zeros, space freed
//	size := d.Size()             // device size: file size rounded up to 512
//	err = d.Close()
//
// Options mirror the kernel's ubd flags (shared/spec/cmdline.md §3): r
// (ReadOnly), s (Sync: O_SYNC writes), d (NoCOW: never treat File as a COW
// file), c (Shared: no host locking), t (NoTrim). Open follows the kernel
// (shared/spec/cow.md §6): a single File that parses as a COW header uses the
// backing file named in it; File plus Backing requires a COW file and creates
// it when it does not exist; the backing file's size and 32-bit mtime must
// match the header; files are locked with fcntl locks (write lock when opened
// read-write, read lock otherwise; the backing file of a COW is only read).
// Kernel-style messages ("Creating ... as COW file for ...", "Not locking ...")
// go to Options.Log.
//
// I/O: sector-aligned requests are the fast path; each request is split into
// runs of sectors that live in the same file (COW or backing) and every run is
// one pread/pwrite. Unaligned writes are read-modify-write under an exclusive
// lock. A COW write stores the data first and then the bitmap bytes that
// changed (the kernel's order), so after a crash a sector is either old or new.
// Reads past the end of the files but inside the device return zeros.
//
// Locks: Disk.rmw (writes shared, read-modify-write exclusive) is taken before
// Disk.mu (bitmap); no I/O other than the bitmap write happens under mu.
//
// Format: shared/spec/cow.md; merge and creation rules §5, §7, §8.
package ubd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/cow"
)

// SectorSize is the guest-visible sector size.
const SectorSize = 512

// Options describe one ubd disk: ubdN<flags>=File[,Backing].
type Options struct {
	File    string // the image, or the COW file when Backing is set or File is a COW file
	Backing string // the backing file of File (optional; overrides the header's name)

	ReadOnly bool // r
	Sync     bool // s: O_SYNC
	NoCOW    bool // d: never treat File as a COW file
	Shared   bool // c: no host locking
	NoTrim   bool // t: no discard

	// Log receives the kernel's informational lines for this disk (nil: dropped).
	Log func(line string)

	// Open opens the host files (File, the backing file) with os.OpenFile's
	// flags; nil means os.OpenFile. linux run as root sets it: its disk
	// driver runs as an unprivileged uid and has the host side open them.
	// A missing COW file is then created before Open is called.
	Open func(name string, flag int) (*os.File, error)
}

func (o *Options) open(name string, flag int) (*os.File, error) {
	if o.Open != nil {
		return o.Open(name, flag)
	}
	return os.OpenFile(name, flag, 0)
}

// sameFile reports whether a and b name the same file.
func (o *Options) sameFile(a, b string) bool {
	fa, err := o.open(a, os.O_RDONLY)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := o.open(b, os.O_RDONLY)
	if err != nil {
		return false
	}
	defer fb.Close()
	sa, err1 := fa.Stat()
	sb, err2 := fb.Stat()
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// Disk is an open ubd disk. Its methods are safe for concurrent use.
type Disk struct {
	file    *os.File    // image or COW file
	backing *os.File    // nil without COW
	hdr     *cow.Header // nil without COW
	ro      bool
	noTrim  bool
	size    int64 // device size
	fileLen int64 // plain: bytes of the image (reads beyond are zero)
	backLen int64 // COW: bytes of the backing file
	dataOff int64 // COW: data area offset
	bmOff   int64 // COW: bitmap offset
	bmLen   int64 // COW: bitmap bytes stored in the file

	rmw sync.RWMutex // writes: RLock; unaligned read-modify-write: Lock

	mu     sync.Mutex // guards bitmap, closed; serialises bitmap writes
	bitmap []byte     // one bit per sector (cow.Dirty), at least ceil(sectors/8) bytes
	closed bool
}

func (o *Options) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}

// openRW opens name read-write (or read-only when ro), retrying read-only when
// the file system or permissions refuse writing, as the kernel does.
func (o *Options) openRW(name string, ro, sync bool) (*os.File, bool, error) {
	flags := os.O_RDWR
	if ro {
		flags = os.O_RDONLY
	}
	if sync && !ro {
		flags |= os.O_SYNC
	}
	f, err := o.open(name, flags)
	if err != nil && !ro && (errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES)) {
		f, err = o.open(name, os.O_RDONLY)
		ro = true
	}
	return f, ro, err
}

// Open opens the disk described by o.
func Open(o Options) (_ *Disk, err error) {
	if o.NoCOW && o.Backing != "" {
		return nil, ErrCOWAndNoCOW
	}
	f, ro, err := o.openRW(o.File, o.ReadOnly, o.Sync)
	if errors.Is(err, os.ErrNotExist) && o.Backing != "" {
		o.log("Creating \"%s\" as COW file for \"%s\"", o.File, o.Backing)
		if cerr := CreateCOW(o.File, o.Backing, CreateOptions{}); cerr != nil {
			return nil, fmt.Errorf("create COW file %s: %w", o.File, cerr)
		}
		f, ro, err = o.openRW(o.File, o.ReadOnly, o.Sync)
	}
	if err != nil {
		return nil, err
	}
	d := &Disk{file: f, ro: ro, noTrim: o.NoTrim}
	defer func() {
		if err != nil {
			d.file.Close()
			if d.backing != nil {
				d.backing.Close()
			}
		}
	}()
	if err := o.lock(f, !ro); err != nil {
		return nil, err
	}

	var h cow.Header
	herr := errors.New("not probed")
	if !o.NoCOW {
		herr = readHeader(f, &h)
	}
	if herr != nil {
		if o.Backing != "" {
			return nil, fmt.Errorf("Failed to read COW header from COW file \"%s\": %w", o.File, herr)
		}
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		d.fileLen = st.Size()
		d.size = roundUp(st.Size(), SectorSize)
		if st.Mode()&os.ModeDevice != 0 {
			n, err := f.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, err
			}
			d.fileLen, d.size = n, roundUp(n, SectorSize)
		}
		return d, nil
	}
	if h.Broken {
		o.log("%s", cow.BrokenMessage)
	}
	if err := d.openBacking(&o, &h); err != nil {
		return nil, err
	}
	d.hdr = &h
	d.bmOff, d.bmLen, d.dataOff = h.BitmapOffset(), h.BitmapLen(), h.DataOffset()
	d.size = roundUp(int64(h.Size), SectorSize)
	nbytes := max(d.bmLen, (h.Sectors()+7)/8)
	d.bitmap = make([]byte, nbytes)
	n, err := f.ReadAt(d.bitmap[:d.bmLen], d.bmOff)
	if int64(n) < d.bmLen {
		if err == nil || err == io.EOF {
			err = ErrTruncatedBitmap
		}
		return nil, fmt.Errorf("read COW bitmap of %s: %w", o.File, err)
	}
	return d, nil
}

func (o *Options) lock(f *os.File, write bool) error {
	if o.Shared {
		o.log("Not locking \"%s\" on the host", f.Name())
		return nil
	}
	if err := lockFile(f, write); err != nil {
		var le *LockError
		if errors.As(err, &le) {
			o.log("F_SETLK failed, file already locked by %s", le.Holder())
			o.log("Failed to lock '%s', err = %d", f.Name(), syscall.EAGAIN)
		}
		return err
	}
	return nil
}

// readHeader reads and decodes the COW header at the start of f.
func readHeader(f *os.File, h *cow.Header) error {
	buf := make([]byte, cow.HeaderReadSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return err
	}
	return h.UnmarshalBinary(buf[:n])
}

// openBacking opens and validates the backing file of a COW disk, switching
// to o.Backing when it names a different file than the header (cow.md §6).
func (d *Disk) openBacking(o *Options, h *cow.Header) error {
	name := h.BackingFile
	if o.Backing != "" && o.Backing != h.BackingFile {
		same := o.sameFile(o.Backing, h.BackingFile)
		name = o.Backing
		if !same {
			o.log("Backing file mismatch - \"%s\" requested, \"%s\" specified in COW header of \"%s\"", o.Backing, h.BackingFile, o.File)
			if err := checkBacking(o, o.Backing, h); err != nil {
				o.log("Switch failed, errno = %d", syscall.EINVAL)
				return err
			}
			o.log("Switching backing file to '%s'", o.Backing)
			// Rewrite the header to name the new file, v3 only: rewriting a
			// v1/v2 header as v3 would move the bitmap (a kernel bug we do not copy).
			if h.Version == 3 && !h.Broken && !d.ro {
				nh := *h
				nh.BackingFile = o.Backing
				if abs, err := Absolutize(o.Backing); err == nil {
					nh.BackingFile = abs
				}
				if b, err := nh.MarshalBinary(); err == nil {
					if _, err := d.file.WriteAt(b, 0); err != nil {
						return fmt.Errorf("rewrite COW header of %s: %w", o.File, err)
					}
					*h = nh
				}
			}
		}
	}
	bf, err := o.open(name, os.O_RDONLY)
	if err != nil {
		return err
	}
	d.backing = bf
	if err := o.lock(bf, false); err != nil {
		return err
	}
	if err := checkBackingFile(bf, h); err != nil {
		o.log("%s", err.Error())
		return err
	}
	st, err := bf.Stat()
	if err != nil {
		return err
	}
	d.backLen = st.Size()
	return nil
}

// fileSizeMtime returns the size (block devices: their length) and st_mtime.
func fileSizeMtime(f *os.File) (int64, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, 0, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	size := st.Size
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		n, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return 0, 0, err
		}
		size = n
	}
	return size, st.Mtim.Sec, nil
}

func checkBackingFile(f *os.File, h *cow.Header) error {
	size, mtime, err := fileSizeMtime(f)
	if err != nil {
		return err
	}
	return h.Validate(f.Name(), size, mtime)
}

func checkBacking(o *Options, name string, h *cow.Header) error {
	f, err := o.open(name, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	return checkBackingFile(f, h)
}

func roundUp(n, a int64) int64 { return (n + a - 1) / a * a }

// Size returns the device size in bytes (a multiple of 512).
func (d *Disk) Size() int64 { return d.size }

// ReadOnly reports whether writes are refused.
func (d *Disk) ReadOnly() bool { return d.ro }

// Header returns the COW header, or nil for a plain image.
func (d *Disk) Header() *cow.Header { return d.hdr }

// preadZero reads len(p) bytes at off from f, zero-filling past end of file.
func preadZero(f *os.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if err == io.EOF {
		clear(p[n:])
		return nil
	}
	return err
}

func (d *Disk) check(off int64, n int) error {
	if off < 0 || off > d.size {
		return ErrOutOfRange
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return nil
}

// ReadAt reads len(p) bytes of the device at off. Reads ending beyond Size
// return the bytes before the end and io.EOF.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if err := d.check(off, len(p)); err != nil {
		return 0, err
	}
	var eof error
	if rest := d.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	if err := d.read(p, off); err != nil {
		return 0, err
	}
	return len(p), eof
}

// read serves an in-range read, one pread per run of sectors.
func (d *Disk) read(p []byte, off int64) error {
	if d.hdr == nil {
		return preadZero(d.file, p, off)
	}
	type run struct {
		dirty     bool
		off, size int64
	}
	var runs []run
	end := off + int64(len(p))
	d.mu.Lock()
	for pos := off; pos < end; {
		s := pos / SectorSize
		lastS := (end - 1) / SectorSize
		dirty, n := cow.Run(d.bitmap, s, lastS-s+1)
		rend := min((s+n)*SectorSize, end)
		runs = append(runs, run{dirty, pos, rend - pos})
		pos = rend
	}
	d.mu.Unlock()
	for _, r := range runs {
		buf := p[r.off-off : r.off-off+r.size]
		var err error
		if r.dirty {
			err = preadZero(d.file, buf, d.dataOff+r.off)
		} else {
			err = preadZero(d.backing, buf, r.off)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteAt writes p at off. Writes must lie inside the device.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if d.ro {
		return 0, ErrReadOnly
	}
	if err := d.check(off, len(p)); err != nil {
		return 0, err
	}
	if off+int64(len(p)) > d.size {
		return 0, ErrOutOfRange
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off%SectorSize == 0 && len(p)%SectorSize == 0 {
		d.rmw.RLock()
		defer d.rmw.RUnlock()
		if err := d.write(p, off); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	// Read-modify-write the covering sectors.
	d.rmw.Lock()
	defer d.rmw.Unlock()
	aoff := off / SectorSize * SectorSize
	aend := roundUp(off+int64(len(p)), SectorSize)
	buf := make([]byte, aend-aoff)
	if err := d.read(buf, aoff); err != nil {
		return 0, err
	}
	copy(buf[off-aoff:], p)
	if err := d.write(buf, aoff); err != nil {
		return 0, err
	}
	return len(p), nil
}

// write stores sector-aligned data: the data first, then the bitmap bytes
// whose bits changed.
func (d *Disk) write(p []byte, off int64) error {
	if d.hdr == nil {
		_, err := d.file.WriteAt(p, off)
		return err
	}
	if _, err := d.file.WriteAt(p, d.dataOff+off); err != nil {
		return err
	}
	return d.setBits(off, int64(len(p)))
}

// setBits marks the sectors of [off, off+n) as living in the COW file and
// stores the bitmap bytes that changed.
func (d *Disk) setBits(off, n int64) error {
	first := off / SectorSize
	last := (off + n - 1) / SectorSize
	d.mu.Lock()
	defer d.mu.Unlock()
	lo, hi := int64(-1), int64(-1)
	for s := first; s <= last; s++ {
		if !cow.Dirty(d.bitmap, s) {
			cow.SetDirty(d.bitmap, s)
			if lo < 0 {
				lo = s / 8
			}
			hi = s / 8
		}
	}
	if lo < 0 || lo >= d.bmLen {
		return nil
	}
	hi = min(hi, d.bmLen-1)
	_, err := d.file.WriteAt(d.bitmap[lo:hi+1], d.bmOff+lo)
	return err
}

// Discard makes the sectors of [off, off+n) read as zeros and frees their
// space (guest TRIM/discard): a hole is punched in the image, or in the COW
// data area with the sectors' bits set. off and n must be sector-aligned.
// It fails with ErrNoTrim on disks opened with NoTrim (the 't' flag).
func (d *Disk) Discard(off, n int64) error {
	if d.noTrim {
		return ErrNoTrim
	}
	if d.ro {
		return ErrReadOnly
	}
	if err := d.check(off, 0); err != nil {
		return err
	}
	if off%SectorSize != 0 || n%SectorSize != 0 || off+n > d.size || n < 0 {
		return fmt.Errorf("discard %d+%d: %w", off, n, ErrOutOfRange)
	}
	if n == 0 {
		return nil
	}
	d.rmw.RLock()
	defer d.rmw.RUnlock()
	if d.hdr == nil {
		return zeroRange(d.file, off, n)
	}
	if err := zeroRange(d.file, d.dataOff+off, n); err != nil {
		return err
	}
	return d.setBits(off, n)
}

// DiscardZeroes reports whether Discard works and leaves zeros (it does
// unless the disk was opened with NoTrim).
func (d *Disk) DiscardZeroes() bool { return !d.noTrim && !d.ro }

// Flush makes every completed write durable (fsync of the written file).
func (d *Disk) Flush() error {
	if d.ro {
		return nil
	}
	return d.file.Sync()
}

// Close releases the files and their locks. It does not flush.
func (d *Disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.rmw.Lock() // wait for writes in flight
	defer d.rmw.Unlock()
	err := d.file.Close()
	if d.backing != nil {
		if berr := d.backing.Close(); err == nil {
			err = berr
		}
	}
	return err
}
