package cow

import (
	"errors"
	"fmt"
)

// Sentinel errors. Decoding errors wrap one of them; compare with errors.Is.
var (
	// ErrShortHeader: fewer than 8 bytes (magic + version) were available.
	ErrShortHeader = errors.New("short COW header")
	// ErrNotCOW: the file does not start with the COW magic in either byte order.
	ErrNotCOW = errors.New("not a COW file")
	// ErrBadVersion: the magic matched but the version is not 1, 2 or 3.
	ErrBadVersion = errors.New("invalid COW version")
	// ErrTruncated: the header of the detected version is incomplete (see *TruncatedError).
	ErrTruncated = errors.New("truncated COW header")
	// ErrBadAlignment: a v3 header with alignment 0 (the C readers divide by zero).
	ErrBadAlignment = errors.New("invalid COW header, alignment is 0")
	// ErrBadSectorSize: sector size 0 or negative.
	ErrBadSectorSize = errors.New("invalid COW header, bad sector size")
	// ErrTooLarge: the backing size makes the COW layout overflow a 63-bit file offset.
	ErrTooLarge = errors.New("invalid COW header, backing size too large")
	// ErrBackingTooLong: the backing file name does not fit the header.
	ErrBackingTooLong = errors.New("backing file name too long")
	// ErrSizeMismatch and ErrMtimeMismatch: the backing file does not match the header (see *MismatchError).
	ErrSizeMismatch  = errors.New("size mismatch of COW header vs backing file")
	ErrMtimeMismatch = errors.New("mtime mismatch of COW header vs backing file")
)

// TruncatedError reports a header shorter than its version's layout.
type TruncatedError struct {
	Version int  // 1, 2 or 3
	Broken  bool // the 64-bit "broken" v3 layout was detected
	Have    int  // bytes available
	Want    int  // bytes the layout needs
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("truncated V%d COW header: %d of %d bytes", e.Version, e.Have, e.Want)
}

func (e *TruncatedError) Unwrap() error { return ErrTruncated }

// MismatchError reports a backing file whose size or mtime differs from the
// COW header. Its message is the one uml_moo prints, naming the file and both
// values: `Size mismatch (51200 vs 51712) of COW header vs backing file "/x.img"`.
type MismatchError struct {
	Field  string // "Size" or "mtime"
	Header uint64 // the value stored in the COW header
	Actual int64  // the backing file's value
	File   string // the backing file
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s mismatch (%d vs %d) of COW header vs backing file \"%s\"", e.Field, e.Header, e.Actual, e.File)
}

func (e *MismatchError) Unwrap() error {
	if e.Field == "Size" {
		return ErrSizeMismatch
	}
	return ErrMtimeMismatch
}

// ReaderMessage returns the line the C readers (kernel and uml_moo) print for a
// decoding error, or "" when they print nothing (ErrNotCOW, nil, or an error
// this package did not produce).
func ReaderMessage(err error) string {
	var te *TruncatedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &te):
		return fmt.Sprintf("read_cow_header - failed to read V%d header", te.Version)
	case errors.Is(err, ErrShortHeader):
		return "read_cow_header - short header"
	case errors.Is(err, ErrBadVersion):
		return "read_cow_header - invalid COW version"
	case errors.Is(err, ErrBadAlignment):
		return "read_cow_header - invalid COW header, align == 0"
	}
	return ""
}

// BrokenMessage is printed (stdout for tools, kernel log for UML) when a
// broken 64-bit v3 header is detected.
const BrokenMessage = "read_cow_header - broken V3 file with 64-bit layout - recovering content."
