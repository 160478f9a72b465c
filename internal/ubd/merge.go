//go:build linux

package ubd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/atomicfile"
	"github.com/umlkit/umlkit/internal/cow"
	"github.com/umlkit/umlkit/internal/sys"
)

// MergeOptions describe one uml_moo run.
type MergeOptions struct {
	COW     string // the COW file (never modified)
	Backing string // overrides the header's backing file name (-b)
	Output  string // the new image; ignored when InPlace
	InPlace bool   // -d: write the dirty sectors into the backing file

	// Notice receives the lines the C header reader prints on stdout (the
	// broken-v3 notice, parser errors). nil discards them.
	Notice io.Writer
	// Progress, when set, is called with bytes done and bytes to do.
	Progress func(done, total int64)
}

// HeaderError: the COW header could not be read. Lines are the reader's
// stdout messages (see cow.ReaderMessage); Error() is uml_moo's stderr line.
type HeaderError struct {
	Lines []string
	Err   error
}

func (e *HeaderError) Error() string { return "Reading COW header failed" }
func (e *HeaderError) Unwrap() error { return e.Err }

// ReadHeader opens name and decodes its COW header. Reader lines (including
// the broken-v3 notice on success) are written to notice.
func ReadHeader(name string, notice io.Writer) (*os.File, *cow.Header, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, &OpError{"COW file open", err}
	}
	var h cow.Header
	if err := readHeader(f, &h); err != nil {
		f.Close()
		he := &HeaderError{Err: err}
		if h.Broken {
			he.Lines = append(he.Lines, cow.BrokenMessage)
		}
		if m := cow.ReaderMessage(err); m != "" {
			he.Lines = append(he.Lines, m)
		}
		for _, l := range he.Lines {
			fmt.Fprintln(orDiscard(notice), l)
		}
		return nil, nil, he
	}
	if h.Broken {
		fmt.Fprintln(orDiscard(notice), cow.BrokenMessage)
	}
	return f, &h, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// readBitmap loads the stored bitmap, padded to cover every sector.
func readBitmap(f *os.File, h *cow.Header) ([]byte, error) {
	bm := make([]byte, max(h.BitmapLen(), (h.Sectors()+7)/8))
	n, err := f.ReadAt(bm[:h.BitmapLen()], h.BitmapOffset())
	if int64(n) < h.BitmapLen() {
		if err == nil || err == io.EOF {
			err = ErrTruncatedBitmap
		}
		return nil, &OpError{"Reading COW bitmap", err}
	}
	return bm, nil
}

// Merge writes the disk seen through a COW file into a new image, or with
// InPlace into the backing file (shared/spec/cow.md §8); the result is
// byte-identical to the real uml_moo's. Differences, all on the safe side:
// the new image is written atomically (temporary file, fsync, rename) and
// nothing is left behind on error; the COW file gets a read lock and an
// in-place merge a write lock on the backing file, so a disk in use by a
// running UML is refused; whole runs of sectors move with copy_file_range,
// holes stay holes; an in-place merge records a journal next to the backing
// file so that a re-run after a crash resumes despite the changed mtime (a
// new-file merge accepts it too: the journal says only COW sectors were
// written). Temporary files a killed run left for the same output (or
// journal) are removed first; a live run's are flock-held and kept.
func Merge(ctx context.Context, o MergeOptions) (err error) {
	cf, h, err := ReadHeader(o.COW, o.Notice)
	if err != nil {
		return err
	}
	defer cf.Close()
	backing := h.BackingFile
	if o.Backing != "" {
		backing = o.Backing
	}
	st, err := os.Stat(backing)
	if err != nil {
		return &OpError{"Stating backing file", err}
	}
	resume := false
	if verr := h.Validate(backing, st.Size(), statMtime(st)); verr != nil {
		// An interrupted -d changed the backing file only in sectors the
		// COW file holds, so both modes can go on where the journal says so.
		if !errors.Is(verr, cow.ErrMtimeMismatch) || !journalMatches(backing, o.COW, h) {
			return verr
		}
		resume = true
	}
	flags := os.O_RDONLY
	if o.InPlace {
		flags = os.O_RDWR
	}
	bf, err := os.OpenFile(backing, flags, 0)
	if err != nil {
		return &OpError{"Opening backing file", err}
	}
	defer bf.Close()
	if err := lockFile(cf, false); err != nil {
		return fmt.Errorf("%w (is a UML still using the COW file?)", err)
	}
	if o.InPlace {
		if err := lockFile(bf, true); err != nil {
			return fmt.Errorf("%w (is a UML still using the backing file?)", err)
		}
		removeStaleTemps(journalPath(backing))
	}
	var out *output
	if !o.InPlace {
		out, err = openOutput(o.Output)
		if err != nil {
			return &OpError{"Output file open", err}
		}
		defer out.cancel()
	}
	bm, err := readBitmap(cf, h)
	if err != nil {
		return err
	}

	ss := int64(h.SectorSize)
	sectors := int64(h.Size) / ss // a trailing partial sector is never copied
	var total int64
	if o.InPlace {
		total = countDirty(bm, sectors) * ss
	} else {
		total = sectors * ss
		if err := out.truncate(total); err != nil {
			return &OpError{"Writing data", err}
		}
	}
	var done int64
	progress := func(n int64) {
		done += n
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	progress(0)
	if o.InPlace && !resume {
		if err := writeJournal(backing, o.COW, h); err != nil {
			return err
		}
	}
	var c copier
	dataOff := h.DataOffset()
	for s := int64(0); s < sectors; {
		if err := ctx.Err(); err != nil {
			return err
		}
		dirty, n := cow.Run(bm, s, min(sectors-s, (64<<20)/ss))
		off, size := s*ss, n*ss
		if !o.InPlace && !out.device && size < fragRun {
			// Many short runs: assemble a window in memory instead.
			e := min(s+fragWindow/ss, sectors)
			if err := c.assemble(out.f, bf, cf, dataOff, bm, s, e, ss); err != nil {
				return &OpError{"Writing data", err}
			}
			progress((e - s) * ss)
			s = e
			continue
		}
		switch {
		case o.InPlace && dirty:
			err = c.copyRange(bf, off, cf, dataOff+off, size, true, progress)
		case o.InPlace:
		case dirty:
			err = c.copyRange(out.f, off, cf, dataOff+off, size, out.device, progress)
		default:
			err = c.copyRange(out.f, off, bf, off, size, out.device, progress)
		}
		if err != nil {
			return &OpError{"Writing data", err}
		}
		s += n
	}
	if o.InPlace {
		if err := bf.Sync(); err != nil {
			return &OpError{"Writing data", err}
		}
		return removeJournal(backing)
	}
	if err := out.commit(); err != nil {
		return &OpError{"Writing data", err}
	}
	return nil
}

// output is where a new-file merge writes: normally an atomic file next to
// the final name (a symlink is followed, so its target is replaced); an
// existing device or FIFO is written in place, as the real tool does, with
// zeros written explicitly since it holds old data.
type output struct {
	f       *os.File
	af      *atomicfile.File // nil for a device
	release func()           // drops the flock on af's temporary file
	device  bool
}

func openOutput(name string) (*output, error) {
	if st, err := os.Stat(name); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &output{f: f, device: true}, nil
	}
	if target, err := filepath.EvalSymlinks(name); err == nil {
		name = target
	}
	removeStaleTemps(name)
	af, release, err := newLockedTemp(name, 0o644)
	if err != nil {
		return nil, err
	}
	return &output{f: af.File, af: af, release: release}, nil
}

func (o *output) truncate(n int64) error {
	if o.device {
		return nil
	}
	return o.f.Truncate(n)
}

func (o *output) commit() error {
	if o.device {
		if err := o.f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
			return err
		}
		return o.f.Close()
	}
	defer o.release()
	return o.af.Commit()
}

func (o *output) cancel() {
	if o.device {
		o.f.Close()
		return
	}
	o.af.Cancel()
	o.release()
}

func statMtime(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Mtim.Sec
	}
	return st.ModTime().Unix()
}

// countDirty counts the set bits of the first n sectors.
func countDirty(bm []byte, n int64) int64 {
	var c int64
	full := min(n/8, int64(len(bm)))
	for _, b := range bm[:full] {
		c += int64(bits.OnesCount8(b))
	}
	for s := full * 8; s < n; s++ {
		if cow.Dirty(bm, s) {
			c++
		}
	}
	return c
}

// The in-place journal: ".<backing>.uml_moo-d" beside the backing file,
// written (and fsynced) before the first write into the backing file and
// removed after the final fsync. While it exists and names this COW file
// and header, the backing file's changed mtime is expected.
func journalPath(backing string) string {
	dir, base := filepath.Split(backing)
	return filepath.Join(dir, "."+base+".uml_moo-d")
}

func journalText(cowName string, h *cow.Header) string {
	abs, err := filepath.Abs(cowName)
	if err != nil {
		abs = cowName
	}
	return fmt.Sprintf("umlkit uml_moo -d journal\ncow %s\nmtime %d\nsize %d\n", abs, h.Mtime, h.Size)
}

func journalMatches(backing, cowName string, h *cow.Header) bool {
	b, err := os.ReadFile(journalPath(backing))
	return err == nil && string(b) == journalText(cowName, h)
}

func writeJournal(backing, cowName string, h *cow.Header) error {
	p := journalPath(backing)
	af, release, err := newLockedTemp(p, 0o644)
	if err != nil {
		return fmt.Errorf("write merge journal: %w", err)
	}
	defer release()
	defer af.Cancel()
	if _, err := af.WriteString(journalText(cowName, h)); err != nil {
		return fmt.Errorf("write merge journal: %w", err)
	}
	if err := af.Commit(); err != nil {
		return fmt.Errorf("write merge journal: %w", err)
	}
	return nil
}

func removeJournal(backing string) error {
	p := journalPath(backing)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove merge journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Temporary files. atomicfile names the temporary file for path
// ".<base>.tmp-<12 hex digits>" beside it. A run holds an flock on its
// temporary file (through a second open file description, so the lock
// outlives atomicfile's close before the rename) from just after creating
// it until it is renamed or removed. A file of that name that nobody holds
// locked was left by a killed run and is removed; one that is held belongs
// to a live run and is kept.

const tempHexLen = 12 // atomicfile: 6 random bytes in hex

// isTempOf reports whether name (a directory entry) is a temporary file
// for a file called base.
func isTempOf(name, base string) bool {
	rnd, ok := strings.CutPrefix(name, "."+base+".tmp-")
	if !ok || len(rnd) != tempHexLen {
		return false
	}
	_, err := hex.DecodeString(rnd)
	return err == nil && strings.ToLower(rnd) == rnd
}

// removeStaleTemps removes the temporary files for path that no live run
// holds. Errors are ignored: a leftover is no reason to fail a merge.
func removeStaleTemps(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type().IsRegular() && isTempOf(e.Name(), base) {
			removeIfStale(filepath.Join(dir, e.Name()))
		}
	}
}

func removeIfStale(p string) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // a live run holds it
	}
	if sameFile(f, p) {
		os.Remove(p)
	}
}

// sameFile reports whether the name p still refers to the open file f.
func sameFile(f *os.File, p string) bool {
	fst, err1 := f.Stat()
	pst, err2 := os.Lstat(p)
	return err1 == nil && err2 == nil && os.SameFile(fst, pst)
}

// newLockedTemp creates the atomic file for path and flocks its temporary
// file; release drops the lock (call it after Commit or Cancel). Should a
// concurrent removeStaleTemps take the new file between its creation and the
// lock, the name no longer refers to it and another one is made.
func newLockedTemp(path string, perm os.FileMode) (*atomicfile.File, func(), error) {
	for range 5 {
		af, err := atomicfile.New(path, perm)
		if err != nil {
			return nil, nil, err
		}
		lk, err := os.Open(af.TempPath())
		if err == nil {
			if unix.Flock(int(lk.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil && sameFile(af.File, af.TempPath()) && sameFile(lk, af.TempPath()) {
				return af, func() { lk.Close() }, nil
			}
			lk.Close()
		}
		af.Cancel()
	}
	return nil, nil, fmt.Errorf("create temporary file for %s: removed while being created", path)
}

// Info describes a COW file (uml_moo --info).
type Info struct {
	File          string `json:"file"`
	Version       int    `json:"version"`
	BrokenLayout  bool   `json:"broken_layout"`
	BackingFile   string `json:"backing_file"`
	Mtime         uint32 `json:"mtime"`
	Size          uint64 `json:"size"`
	SectorSize    uint32 `json:"sector_size"`
	Alignment     uint32 `json:"alignment"`
	Format        uint32 `json:"cow_format"`
	HeaderLen     int    `json:"header_len"`
	BitmapOffset  int64  `json:"bitmap_offset"`
	BitmapLen     int64  `json:"bitmap_len"`
	DataOffset    int64  `json:"data_offset"`
	Sectors       int64  `json:"sectors"`
	DirtySectors  int64  `json:"dirty_sectors"`
	DirtyBytes    int64  `json:"dirty_bytes"`
	FileSize      int64  `json:"file_size"`
	FileAllocated int64  `json:"file_allocated"`
	BackingStatus string `json:"backing_status"` // "ok" or why the backing file does not validate
}

// ReadInfo reads the header and bitmap of a COW file and checks its backing
// file (backing overrides the header's name when not empty).
func ReadInfo(name, backing string, notice io.Writer) (*Info, error) {
	f, h, err := ReadHeader(name, notice)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bm, err := readBitmap(f, h)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	in := &Info{File: name, Version: h.Version, BrokenLayout: h.Broken, BackingFile: h.BackingFile,
		Mtime: h.Mtime, Size: h.Size, SectorSize: h.SectorSize, Alignment: h.Alignment, Format: h.Format,
		HeaderLen: h.Len(), BitmapOffset: h.BitmapOffset(), BitmapLen: h.BitmapLen(), DataOffset: h.DataOffset(),
		Sectors: h.Sectors(), FileSize: st.Size()}
	in.DirtySectors = countDirty(bm, h.Sectors())
	in.DirtyBytes = in.DirtySectors * int64(h.SectorSize)
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		in.FileAllocated = s.Blocks * 512
	}
	if backing == "" {
		backing = h.BackingFile
	}
	in.BackingStatus = "ok"
	if bst, err := os.Stat(backing); err != nil {
		in.BackingStatus = sys.Strerror(err)
		if pe := (*os.PathError)(nil); errors.As(err, &pe) {
			in.BackingStatus = fmt.Sprintf("%s: %s", backing, strings.ToLower(sys.Strerror(pe.Err)[:1])+sys.Strerror(pe.Err)[1:])
		}
	} else if err := h.Validate(backing, bst.Size(), statMtime(bst)); err != nil {
		in.BackingStatus = err.Error()
	}
	return in, nil
}
