// Package cow encodes and decodes UML copy-on-write file headers (v1, v2, v3
// and the "broken" 64-bit v3 layout) and computes the bitmap and data-area
// layout that follows them, rounding quirks included.
//
// It is a pure format package: no I/O, no syscalls. Callers read the first
// HeaderReadSize bytes of a file and hand them to UnmarshalBinary; they stat
// the backing file themselves and call Validate.
//
// Byte order is explicit per version: v2 and v3 are big-endian; v1 is "host
// order", which is little-endian on every platform the real tools were
// verified on (amd64) and is fixed to little-endian here.
//
// Format: shared/spec/cow.md §1–§4 (creation rules §5).
package cow

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Constants of the format (shared/spec/cow.md §1–§2).
const (
	Magic   uint32 = 0x4F4F4F4D // "OOOM" when stored big-endian
	Version        = 3          // the only version ever written

	HeaderV1Size       = 280
	HeaderV2Size       = 4120
	HeaderV3Size       = 4128
	HeaderV3BrokenSize = 4136
	// HeaderReadSize is how much the readers always ask for at offset 0.
	HeaderReadSize = HeaderV3BrokenSize

	pathV1Len = 256
	pathLen   = 4096
	// MaxBackingLen is the longest backing name v2/v3 headers hold (the
	// writers reject longer names).
	MaxBackingLen = pathLen - 1
	// MaxBackingLenV1 is the longest backing name a v1 header holds.
	MaxBackingLenV1 = pathV1Len - 1

	// SectorSize and Alignment are what the kernel and uml_mkcow write.
	SectorSize = 512
	Alignment  = 4096

	// FormatBitmap is the only cow_format value defined.
	FormatBitmap = 0

	// MaxSize bounds the backing size so every offset fits in an int64.
	MaxSize = 1 << 62
)

// Offsets of the fields of each layout.
const (
	offMagic   = 0
	offVersion = 4

	v1OffPath       = 8
	v1OffMtime      = 264
	v1OffSize       = 268
	v1OffSectorSize = 276

	v2OffPath       = 8
	v2OffMtime      = 4104
	v2OffSize       = 4108
	v2OffSectorSize = 4116

	v3OffMtime      = 8
	v3OffSize       = 12
	v3OffSectorSize = 20
	v3OffAlignment  = 24
	v3OffFormat     = 28
	v3OffPath       = 32

	bv3OffMtime      = 8 // a 32-bit value in a 64-bit slot; bytes 12..15 are 0
	bv3OffSize       = 16
	bv3OffSectorSize = 24
	bv3OffAlignment  = 28
	bv3OffFormat     = 32
	bv3OffPath       = 36
)

var (
	be = binary.BigEndian
	// v1Order is v1's "host order" (amd64, where the real tools were verified).
	v1Order = binary.LittleEndian
)

// Header is a decoded COW header of any version.
type Header struct {
	Version int  // 1, 2 or 3
	Broken  bool // v3 written with the unpacked 64-bit layout (read-only legacy)

	BackingFile string // as stored (absolute when written by uml_mkcow or the kernel)
	Mtime       uint32 // backing file st_mtime, low 32 bits
	Size        uint64 // backing file size in bytes
	SectorSize  uint32
	Alignment   uint32 // v3; v1 and v2 use SectorSize
	Format      uint32 // v3 cow_format, always FormatBitmap
}

// New returns the v3 header the kernel and uml_mkcow write for a backing file
// (absolute name, st_mtime, size): sector size 512, alignment 4096.
func New(backing string, mtime int64, size int64) (*Header, error) {
	h := &Header{Version: 3, BackingFile: backing, Mtime: uint32(mtime), Size: uint64(size),
		SectorSize: SectorSize, Alignment: Alignment}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}

// Len returns the encoded size of h's layout.
func (h *Header) Len() int {
	switch {
	case h.Version == 1:
		return HeaderV1Size
	case h.Version == 2:
		return HeaderV2Size
	case h.Broken:
		return HeaderV3BrokenSize
	}
	return HeaderV3Size
}

// align is the alignment the layout uses: the v3 field, or the sector size.
func (h *Header) align() uint64 {
	if h.Version == 3 {
		return uint64(h.Alignment)
	}
	return uint64(h.SectorSize)
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// BitmapOffset is where the sector bitmap starts.
func (h *Header) BitmapOffset() int64 {
	if h.Version != 3 {
		return int64(h.Len())
	}
	return int64(roundUp(uint64(h.Len()), h.align()))
}

// Sectors is the number of sectors of the backing file (rounded up).
func (h *Header) Sectors() int64 {
	ss := uint64(h.SectorSize)
	return int64((h.Size + ss - 1) / ss)
}

// BitmapLen is the number of bitmap bytes the readers load. For v1 and v2 it
// keeps the historic rounding bug and can be one byte short of Sectors()/8;
// sectors without a bit read as clean.
func (h *Header) BitmapLen() int64 {
	ss := uint64(h.SectorSize)
	if h.Version != 3 {
		return int64((h.Size + ss - 1) / (8 * ss))
	}
	return (h.Sectors() + 7) / 8
}

// DataOffset is where sector 0's COW copy lives; sector s is at
// DataOffset()+s*SectorSize.
func (h *Header) DataOffset() int64 {
	return int64(roundUp(uint64(h.BitmapOffset()+h.BitmapLen()), h.align()))
}

// FileLen is the length of a freshly created COW file: DataOffset()+Size.
func (h *Header) FileLen() int64 { return h.DataOffset() + int64(h.Size) }

// check validates the fields every layout computation relies on.
func (h *Header) check() error {
	switch h.Version {
	case 1, 2, 3:
	default:
		return fmt.Errorf("%w %d", ErrBadVersion, h.Version)
	}
	if h.Broken && h.Version != 3 {
		return fmt.Errorf("%w: broken layout with version %d", ErrBadVersion, h.Version)
	}
	if h.SectorSize == 0 || (h.Version != 3 && int32(h.SectorSize) < 0) {
		return fmt.Errorf("%w: %d", ErrBadSectorSize, int32(h.SectorSize))
	}
	if h.Version == 3 && h.Alignment == 0 {
		return ErrBadAlignment
	}
	if h.Size > MaxSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, h.Size)
	}
	max := MaxBackingLen
	if h.Version == 1 {
		max = MaxBackingLenV1
	}
	if len(h.BackingFile) > max {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrBackingTooLong, len(h.BackingFile), max)
	}
	if i := bytes.IndexByte([]byte(h.BackingFile), 0); i >= 0 {
		return fmt.Errorf("backing file name contains a NUL byte at %d", i)
	}
	return nil
}

// MarshalBinary encodes h in its own layout (Version/Broken). The path field
// is NUL-padded. A v3 header with an empty backing name cannot be encoded:
// it would read back as the broken layout.
func (h *Header) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(nil)
}

// AppendBinary appends the encoding of h to b.
func (h *Header) AppendBinary(b []byte) ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	if h.Version == 3 && !h.Broken && h.BackingFile == "" {
		return nil, fmt.Errorf("%w: a v3 header needs a backing file name", ErrBackingTooLong)
	}
	n := len(b)
	b = append(b, make([]byte, h.Len())...)
	p := b[n:]
	switch {
	case h.Version == 1:
		v1Order.PutUint32(p[offMagic:], Magic)
		v1Order.PutUint32(p[offVersion:], 1)
		copy(p[v1OffPath:v1OffPath+pathV1Len], h.BackingFile)
		v1Order.PutUint32(p[v1OffMtime:], h.Mtime)
		v1Order.PutUint64(p[v1OffSize:], h.Size)
		v1Order.PutUint32(p[v1OffSectorSize:], h.SectorSize)
	case h.Version == 2:
		be.PutUint32(p[offMagic:], Magic)
		be.PutUint32(p[offVersion:], 2)
		copy(p[v2OffPath:v2OffPath+pathLen], h.BackingFile)
		be.PutUint32(p[v2OffMtime:], h.Mtime)
		be.PutUint64(p[v2OffSize:], h.Size)
		be.PutUint32(p[v2OffSectorSize:], h.SectorSize)
	case h.Broken:
		be.PutUint32(p[offMagic:], Magic)
		be.PutUint32(p[offVersion:], 3)
		be.PutUint32(p[bv3OffMtime:], h.Mtime)
		be.PutUint64(p[bv3OffSize:], h.Size)
		be.PutUint32(p[bv3OffSectorSize:], h.SectorSize)
		be.PutUint32(p[bv3OffAlignment:], h.Alignment)
		be.PutUint32(p[bv3OffFormat:], h.Format)
		copy(p[bv3OffPath:bv3OffPath+pathLen], h.BackingFile)
	default:
		be.PutUint32(p[offMagic:], Magic)
		be.PutUint32(p[offVersion:], 3)
		be.PutUint32(p[v3OffMtime:], h.Mtime)
		be.PutUint64(p[v3OffSize:], h.Size)
		be.PutUint32(p[v3OffSectorSize:], h.SectorSize)
		be.PutUint32(p[v3OffAlignment:], h.Alignment)
		be.PutUint32(p[v3OffFormat:], h.Format)
		copy(p[v3OffPath:v3OffPath+pathLen], h.BackingFile)
	}
	return b, nil
}

// cString returns the bytes of field up to the first NUL; the field's last
// byte is always treated as the terminator.
func cString(field []byte) string {
	field = field[:len(field)-1]
	if i := bytes.IndexByte(field, 0); i >= 0 {
		field = field[:i]
	}
	return string(field)
}

// UnmarshalBinary decodes a header from the first bytes of a file (pass up to
// HeaderReadSize bytes; more is ignored). It classifies the data exactly as
// the kernel and uml_moo do (shared/spec/cow.md §3). On ErrTruncated, h still
// holds Version and Broken, so callers can print the same messages as the C
// readers (BrokenMessage, then ReaderMessage(err)).
func (h *Header) UnmarshalBinary(data []byte) error {
	*h = Header{}
	if len(data) < 8 {
		return fmt.Errorf("%w: %d bytes", ErrShortHeader, len(data))
	}
	// The C readers work on a zero-filled buffer of HeaderReadSize bytes.
	var buf [HeaderReadSize]byte
	n := copy(buf[:], data)
	b := buf[:]
	var version uint32
	switch m := v1Order.Uint32(b[offMagic:]); m {
	case Magic:
		version = v1Order.Uint32(b[offVersion:])
	case 0x4D4F4F4F:
		version = be.Uint32(b[offVersion:])
	default:
		return fmt.Errorf("%w (magic %#08x)", ErrNotCOW, be.Uint32(b[offMagic:]))
	}
	switch version {
	case 1:
		h.Version = 1
		if n < HeaderV1Size {
			return &TruncatedError{Version: 1, Have: n, Want: HeaderV1Size}
		}
		h.BackingFile = cString(b[v1OffPath : v1OffPath+pathV1Len])
		h.Mtime = v1Order.Uint32(b[v1OffMtime:])
		h.Size = v1Order.Uint64(b[v1OffSize:])
		h.SectorSize = v1Order.Uint32(b[v1OffSectorSize:])
		h.Alignment = h.SectorSize
	case 2:
		h.Version = 2
		if n < HeaderV2Size {
			return &TruncatedError{Version: 2, Have: n, Want: HeaderV2Size}
		}
		h.BackingFile = cString(b[v2OffPath : v2OffPath+pathLen])
		h.Mtime = be.Uint32(b[v2OffMtime:])
		h.Size = be.Uint64(b[v2OffSize:])
		h.SectorSize = be.Uint32(b[v2OffSectorSize:])
		h.Alignment = h.SectorSize
	case 3:
		h.Version = 3
		// A real v3 file has the first byte of an absolute path at 32.
		h.Broken = be.Uint32(b[v3OffPath:]) == 0
		if h.Broken {
			if n < HeaderV3BrokenSize {
				return &TruncatedError{Version: 3, Broken: true, Have: n, Want: HeaderV3BrokenSize}
			}
			h.Mtime = be.Uint32(b[bv3OffMtime:])
			h.Size = be.Uint64(b[bv3OffSize:])
			h.SectorSize = be.Uint32(b[bv3OffSectorSize:])
			h.Alignment = be.Uint32(b[bv3OffAlignment:])
			h.Format = be.Uint32(b[bv3OffFormat:])
			h.BackingFile = cString(b[bv3OffPath : bv3OffPath+pathLen])
		} else {
			if n < HeaderV3Size {
				return &TruncatedError{Version: 3, Have: n, Want: HeaderV3Size}
			}
			h.Mtime = be.Uint32(b[v3OffMtime:])
			h.Size = be.Uint64(b[v3OffSize:])
			h.SectorSize = be.Uint32(b[v3OffSectorSize:])
			h.Alignment = be.Uint32(b[v3OffAlignment:])
			h.Format = be.Uint32(b[v3OffFormat:])
			h.BackingFile = cString(b[v3OffPath : v3OffPath+pathLen])
		}
	default:
		return fmt.Errorf("%w %d", ErrBadVersion, version)
	}
	return h.check()
}

// Validate checks the backing file's actual size and st_mtime (seconds)
// against the header, size first, as the kernel and uml_moo do. The error is
// a *MismatchError naming file and both values.
func (h *Header) Validate(file string, size, mtime int64) error {
	if uint64(size) != h.Size || size < 0 {
		return &MismatchError{Field: "Size", Header: h.Size, Actual: size, File: file}
	}
	if mtime != int64(h.Mtime) {
		return &MismatchError{Field: "mtime", Header: uint64(h.Mtime), Actual: mtime, File: file}
	}
	return nil
}

// Dirty reports whether sector s's bit is set in bitmap (least significant bit
// first). Sectors beyond the bitmap are clean.
func Dirty(bitmap []byte, s int64) bool {
	if s < 0 || s/8 >= int64(len(bitmap)) {
		return false
	}
	return bitmap[s/8]&(1<<(s%8)) != 0
}

// SetDirty sets sector s's bit; it panics if s is outside bitmap.
func SetDirty(bitmap []byte, s int64) { bitmap[s/8] |= 1 << (s % 8) }

// Run returns the length of the run of sectors starting at s that share s's
// state (dirty or clean), looking at no more than max sectors.
func Run(bitmap []byte, s, max int64) (dirty bool, n int64) {
	dirty = Dirty(bitmap, s)
	n = 1
	for n < max {
		i := s + n
		// Skip whole bytes quickly.
		if i%8 == 0 && i/8 < int64(len(bitmap)) && n+8 <= max {
			want := byte(0)
			if dirty {
				want = 0xFF
			}
			if bitmap[i/8] == want {
				n += 8
				continue
			}
		}
		if Dirty(bitmap, i) != dirty {
			break
		}
		n++
	}
	return dirty, n
}
