//go:build linux

package ubd

import (
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/cow"
)

// copier moves byte ranges between files in the kernel where it can:
// copy_file_range (which reflinks on file systems that share extents), with a
// pread/pwrite fallback; holes of the source are skipped with SEEK_DATA.
type copier struct {
	noCFR bool   // copy_file_range unsupported between these files
	buf   []byte // fallback buffer
	segs  map[*os.File]segment
	win   []byte // assemble's window buffers
}

const copyBufSize = 1 << 20

// segment caches what SEEK_DATA/SEEK_HOLE said about one source file: from
// offset lo on, the next data lies in [start, stop) (none: no data after lo).
type segment struct {
	lo, start, stop int64
	none            bool
}

// dataSegment returns the next data segment of f at or after off and before
// end ([start, stop)); ok is false when the rest is a hole (or past EOF).
// Answers are cached per file, so a fully allocated file costs two lseeks in
// all, not two per run.
func (c *copier) dataSegment(f *os.File, off, end int64) (start, stop int64, ok bool, err error) {
	if c.segs == nil {
		c.segs = map[*os.File]segment{}
	}
	sg, cached := c.segs[f]
	if !cached || off < sg.lo || (!sg.none && off >= sg.stop) {
		sg, err = seekSegment(f, off)
		if err != nil {
			return 0, 0, false, err
		}
		c.segs[f] = sg
	}
	if sg.none {
		return 0, 0, false, nil
	}
	start = max(off, sg.start)
	if start >= end {
		return 0, 0, false, nil
	}
	return start, min(sg.stop, end), true, nil
}

func seekSegment(f *os.File, off int64) (segment, error) {
	fd := int(f.Fd())
	start, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, syscall.ENXIO) {
		return segment{lo: off, none: true}, nil
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
		return segment{lo: off, start: off, stop: 1<<63 - 1}, nil // no SEEK_DATA: all data
	}
	if err != nil {
		return segment{}, &os.PathError{Op: "lseek SEEK_DATA", Path: f.Name(), Err: err}
	}
	stop, err := unix.Seek(fd, start, unix.SEEK_HOLE)
	if err != nil {
		stop = 1<<63 - 1
	}
	return segment{lo: off, start: start, stop: stop}, nil
}

// copyRange copies n bytes from src at soff to dst at doff. Holes of src (and
// anything past its end) become holes in dst when zeroHoles is false (dst is
// known to read as zeros there), or are zeroed in dst when it is set.
// progress is called with the number of bytes handled after each step.
func (c *copier) copyRange(dst *os.File, doff int64, src *os.File, soff, n int64, zeroHoles bool, progress func(int64)) error {
	end := soff + n
	for pos := soff; pos < end; {
		start, stop, ok, err := c.dataSegment(src, pos, end)
		if err != nil {
			return err
		}
		if !ok {
			start, stop = end, end
		}
		if start > pos {
			if zeroHoles {
				if err := zeroRange(dst, doff+(pos-soff), start-pos); err != nil {
					return err
				}
			}
			progress(start - pos)
		}
		for p := start; p < stop; {
			chunk := min(stop-p, 8<<20)
			if err := c.copyData(dst, doff+(p-soff), src, p, chunk); err != nil {
				return err
			}
			progress(chunk)
			p += chunk
		}
		pos = stop
	}
	return nil
}

// copyData copies exactly n bytes of data; bytes past src's end read as zero.
func (c *copier) copyData(dst *os.File, doff int64, src *os.File, soff, n int64) error {
	for n > 0 && !c.noCFR {
		so, do := soff, doff
		w, err := unix.CopyFileRange(int(src.Fd()), &so, int(dst.Fd()), &do, int(n), 0)
		if err != nil {
			if errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EOPNOTSUPP) ||
				errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EBADF) {
				c.noCFR = true
				break
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return &os.PathError{Op: "copy_file_range", Path: dst.Name(), Err: err}
		}
		if w == 0 { // source ended: the rest reads as zeros
			return zeroRange(dst, doff, n)
		}
		soff, doff, n = soff+int64(w), doff+int64(w), n-int64(w)
	}
	if n == 0 {
		return nil
	}
	if c.buf == nil {
		c.buf = make([]byte, copyBufSize)
	}
	for n > 0 {
		b := c.buf[:min(n, int64(len(c.buf)))]
		r, err := src.ReadAt(b, soff)
		if err != nil && err != io.EOF {
			return err
		}
		clear(b[r:])
		if _, err := dst.WriteAt(b, doff); err != nil {
			return err
		}
		soff, doff, n = soff+int64(len(b)), doff+int64(len(b)), n-int64(len(b))
	}
	return nil
}

// zeroRange makes n bytes of f at off read as zeros: punch a hole, or write
// zeros where punching is not supported.
func zeroRange(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	zero := make([]byte, min(n, copyBufSize))
	for n > 0 {
		b := zero[:min(n, int64(len(zero)))]
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off, n = off+int64(len(b)), n-int64(len(b))
	}
	return nil
}

// A run shorter than fragRun starts a window of fragWindow bytes that is
// assembled in memory (two reads, one write per non-zero stretch) instead of
// one copy per run: guest COW files are often a mosaic of 4 KiB pages.
const (
	fragRun    = 64 << 10
	fragWindow = 1 << 20
)

// assemble merges sectors [s, e) into dst (a fresh file that reads as zeros):
// the backing window and the COW window are read whole, the dirty runs laid
// over the backing data, and every stretch that is not all zeros in 4 KiB
// blocks is written, so zero blocks stay holes.
func (c *copier) assemble(dst, back, cowf *os.File, dataOff int64, bm []byte, s, e, ss int64) error {
	n := (e - s) * ss
	if int64(cap(c.win)) < 2*n {
		c.win = make([]byte, 2*n)
	}
	base, over := c.win[:n], c.win[n:2*n]
	off := s * ss
	if err := preadZero(back, base, off); err != nil {
		return err
	}
	if err := preadZero(cowf, over, dataOff+off); err != nil {
		return err
	}
	for i := s; i < e; {
		dirty, k := cow.Run(bm, i, e-i)
		if dirty {
			a, b := (i-s)*ss, (i-s+k)*ss
			copy(base[a:b], over[a:b])
		}
		i += k
	}
	// Write non-zero stretches, judged in 4 KiB blocks of the file.
	const blk = 4096
	start := int64(-1)
	for p := int64(0); p < n; {
		q := min(n, (off+p)/blk*blk+blk-off)
		zero := allZero(base[p:q])
		if !zero && start < 0 {
			start = p
		}
		if zero && start >= 0 {
			if _, err := dst.WriteAt(base[start:p], off+start); err != nil {
				return err
			}
			start = -1
		}
		p = q
	}
	if start >= 0 {
		if _, err := dst.WriteAt(base[start:n], off+start); err != nil {
			return err
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
