package initramfs

// Error is a failure to unpack an image. Msg is the text Linux prints after
// "Initramfs unpacking failed: " for the same fault (observed on linux.uml
// 6.1); Walk stops at the first one, and what was unpacked before it
// stays, as in Linux.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// Is reports whether target is an *Error with the same text, so that the
// sentinels below match errors made elsewhere with Errorf.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == e.Msg
}

// Errorf returns an *Error with the text msg.
func Errorf(msg string) error { return &Error{Msg: msg} }

// The kernel's texts for faults of the image itself; decoders report
// their own (internal/initramfs/unpack).
var (
	// ErrInvalidMagic: a byte that starts neither padding, an (aligned)
	// archive nor a compressed member the kernel knows.
	ErrInvalidMagic = Errorf("invalid magic at start of compressed archive")
	// ErrJunkEnd: a compressed member ends inside an archive (no trailer).
	ErrJunkEnd = Errorf("junk at the end of compressed archive")
	// ErrJunkWithin: data after an archive inside a compressed member that
	// is neither padding nor another archive.
	ErrJunkWithin = Errorf("junk within compressed archive")
	// ErrBrokenPadding: an archive's trailer is followed by zeros that end
	// at an offset that is not a multiple of 4.
	ErrBrokenPadding = Errorf("broken padding")
	// ErrNoMagic: a header that is not a newc/crc header.
	ErrNoMagic = Errorf("no cpio magic")
	// ErrOldCpio: an archive in the old (odc) format.
	ErrOldCpio = Errorf("incorrect cpio method used: use -H newc option")
	// ErrChecksum: a crc member whose data does not add up to its Check.
	ErrChecksum = Errorf("bad data checksum")
	// ErrMalformed: a name without its terminating NUL.
	ErrMalformed = Errorf("malformed archive")
	// ErrDecompressor: a decoder failed without a text of its own.
	ErrDecompressor = Errorf("decompressor failed")
	// ErrWrite: the unpacked data could not be written (the rootfs is full).
	ErrWrite = Errorf("write error")
)
