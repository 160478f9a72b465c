package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Method is a compression method, recognised by the magic bytes that start
// a member.
type Method int

// The methods Linux recognises (its RD_* options).
const (
	None  Method = iota
	Gzip         // 1f 8b
	Bzip2        // "BZh"
	LZMA         // 5d 00 00: the legacy .lzma ("alone") format
	XZ           // fd "7zXZ" 00
	LZO          // 89 "LZO"... (lzop)
	LZ4          // 02 21 4c 18: lz4's legacy frame format (lz4 -l)
	Zstd         // 28 b5 2f fd
)

var methodNames = [...]string{None: "none", Gzip: "gzip", Bzip2: "bzip2", LZMA: "lzma", XZ: "xz", LZO: "lzo", LZ4: "lz4", Zstd: "zstd"}

func (m Method) String() string {
	if m >= 0 && int(m) < len(methodNames) {
		return methodNames[m]
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

var magics = []struct {
	m     Method
	magic string
}{
	{Gzip, "\x1f\x8b"},
	{Bzip2, "BZh"},
	{LZMA, "\x5d\x00\x00"},
	{XZ, "\xfd7zXZ\x00"},
	{LZO, "\x89LZO"},
	{LZ4, "\x02\x21\x4c\x18"},
	{Zstd, "\x28\xb5\x2f\xfd"},
}

// Detect returns the method whose magic starts b, or None.
func Detect(b []byte) Method {
	for _, m := range magics {
		if bytes.HasPrefix(b, []byte(m.magic)) {
			return m.m
		}
	}
	return None
}

// A Decoder opens the decompressed stream of one member, which starts at
// src (its magic included). The stream ends with io.EOF at the member's
// end; src.Count() is then the member's compressed length. A decoder that
// had to read past the end gives those bytes back with src.Unread. Faults
// are *Error values with the text the kernel's decompressor prints.
type Decoder func(src *Source) (io.Reader, error)

// Options control Walk.
type Options struct {
	// Decoders by method; a member whose method has none is refused with
	// Linux's "compression method NAME not configured".
	Decoders map[Method]Decoder
	// Logf receives the kernel's log lines about single members
	// ("initramfs name without nulterm: NAME"); nil drops them.
	Logf func(format string, args ...any)
}

// Entry is one archive member handed to a Sink.
type Entry struct {
	Header
	// Name is the member's name up to its first NUL, as the archive has
	// it: relative or absolute, possibly with "." and ".." components
	// (Linux resolves it from the rootfs's root, so ".." never leaves it).
	Name string
	// Target is a symlink's target.
	Target string
	// LinkTo, when not empty, is the name of an earlier member of the same
	// archive with the same inode (Ino, DevMajor, DevMinor and file type)
	// and NLink > 1: this one is a hard link to it. A regular file's data
	// (often only on its last name) is then written through the link.
	LinkTo string
}

// Sink receives an image's members in archive order.
type Sink interface {
	// Entry makes one member. data is nil except for regular files, where
	// it yields the member's data (FileSize bytes unless the image is
	// truncated). An error stops the walk and is returned by Walk: a sink
	// reports only faults Linux reports (ErrWrite) and ignores the rest, as
	// Linux ignores a failed mkdir or symlink.
	Entry(e *Entry, data io.Reader) error
	// EndArchive is called at each archive's trailer.
	EndArchive() error
}

// Walk reads the image (size bytes of img) and hands its members to s. It
// returns nil when the image was read to its end, or the first fault.
func Walk(img io.ReaderAt, size int64, o Options, s Sink) error {
	w := &walker{img: img, size: size, o: o, s: s, state: stHeader}
	return w.run()
}

// Parser states between members: expecting a header, or after a member
// (zero padding may follow; Linux's "Reset").
const (
	stHeader = iota
	stReset
)

type walker struct {
	img   io.ReaderAt
	size  int64
	o     Options
	s     Sink
	state int
	links map[linkKey]string // this archive's multiply linked members
}

type linkKey struct {
	ino, major, minor, typ uint32
}

// counted is a buffered reader that counts what was taken from it.
type counted struct {
	r *bufio.Reader
	n int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *counted) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *counted) peekByte() (byte, error) {
	b, err := c.r.Peek(1)
	if len(b) == 0 {
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	return b[0], nil
}

// skipZeros discards zero bytes up to the next other one (or the end)
// and returns how many.
func (c *counted) skipZeros() int64 {
	var n int64
	for {
		b, _ := c.r.Peek(4096)
		i := 0
		for i < len(b) && b[i] == 0 {
			i++
		}
		c.r.Discard(i)
		c.n += int64(i)
		n += int64(i)
		if i < len(b) || len(b) == 0 {
			return n
		}
	}
}

// skip discards n bytes; short reports an end of input before them.
func (c *counted) skip(n int64) (short bool, err error) {
	m, err := io.CopyN(io.Discard, c, n)
	if m < n && (err == nil || err == io.EOF) {
		return true, nil
	}
	return false, err
}

// read reads exactly n bytes; short reports an end of input before them.
func (c *counted) read(n int) (b []byte, short bool, err error) {
	b = make([]byte, n)
	m, err := io.ReadFull(c, b)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return b[:m], true, nil
	}
	return b, false, err
}

// Source is the compressed input of one member (see Decoder).
type Source struct{ c counted }

func newSource(img io.ReaderAt, off, size int64) *Source {
	return &Source{c: counted{r: bufio.NewReaderSize(io.NewSectionReader(img, off, size-off), 64<<10)}}
}

// Read reads compressed bytes.
func (s *Source) Read(p []byte) (int, error) { return s.c.Read(p) }

// ReadByte reads one compressed byte.
func (s *Source) ReadByte() (byte, error) { return s.c.ReadByte() }

// Peek returns the next n bytes without taking them (fewer at the end of
// the image, with an error).
func (s *Source) Peek(n int) ([]byte, error) { return s.c.r.Peek(n) }

// Count is how many bytes were taken so far.
func (s *Source) Count() int64 { return s.c.n }

// Unread gives back the last n bytes taken, which lie past the member's
// end. The decoder reads nothing after it.
func (s *Source) Unread(n int64) {
	s.c.n -= min(n, s.c.n)
}

func (w *walker) logf(format string, args ...any) {
	if w.o.Logf != nil {
		w.o.Logf(format, args...)
	}
}

func (w *walker) run() error {
	var pos int64
	for pos < w.size {
		src := newSource(w.img, pos, w.size)
		b, err := src.c.peekByte()
		if err != nil {
			return err
		}
		switch {
		case b == 0: // padding between members
			pos += src.c.skipZeros()
		case b == '0' && pos%4 == 0: // an uncompressed archive
			w.state = stHeader
			err := w.cpio(&src.c, pos, false)
			pos += src.c.n
			if err != nil {
				return err
			}
		default:
			head, _ := src.Peek(8)
			m := Detect(head)
			if m == None {
				return ErrInvalidMagic
			}
			dec := w.o.Decoders[m]
			if dec == nil {
				return Errorf(fmt.Sprintf("compression method %s not configured", m))
			}
			out, err := dec(src)
			if err != nil {
				return err
			}
			if err := w.cpio(&counted{r: bufio.NewReaderSize(out, 64<<10)}, 0, true); err != nil {
				return err
			}
			if src.Count() <= 0 {
				return ErrDecompressor // no progress: never loop on one member
			}
			pos += src.Count()
		}
	}
	return nil
}

// cpio parses archive members from in, whose byte 0 lies at offset base of
// the stream alignment is measured in (the image for an uncompressed
// archive, the member's output for a compressed one). An uncompressed
// stream stops without error at its end or, between members, at a byte
// that starts no member here (the image loop looks at it); a decompressed
// stream must end between members.
func (w *walker) cpio(in *counted, base int64, compressed bool) error {
	// truncated is the outcome of an end of input inside a member.
	truncated := func() error {
		if compressed {
			return ErrJunkEnd
		}
		return nil
	}
	for {
		if w.state == stReset {
			in.skipZeros()
			if _, err := in.peekByte(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if (base+in.n)%4 != 0 {
				return ErrBrokenPadding
			}
			if b, _ := in.peekByte(); b != '0' {
				if compressed {
					return ErrJunkWithin
				}
				return nil // the image loop looks at it
			}
			w.state = stHeader
		}
		hb, short, err := in.read(HeaderSize)
		if err != nil {
			return err
		}
		if short {
			return truncated()
		}
		var h Header
		switch err := h.UnmarshalBinary(hb); {
		case errors.Is(err, ErrOldFormat):
			return ErrOldCpio
		case err != nil:
			return ErrNoMagic
		}
		// The name and its padding up to a 4-byte boundary (headers start
		// aligned, so the padding depends on the name's size only).
		nameBlock := int64((HeaderSize+h.NameSize+3)&^3 - HeaderSize)
		w.state = stReset // whatever happens to the member, what follows it is "after a member"
		if h.NameSize == 0 || h.NameSize > PathMax {
			// Linux skips such a member whole.
			if short, err := in.skip(nameBlock + int64(h.FileSize)); err != nil || short {
				if err != nil {
					return err
				}
				return truncated()
			}
			continue
		}
		nb, short, err := in.read(int(nameBlock))
		if err != nil {
			return err
		}
		if short {
			return truncated()
		}
		raw := nb[:h.NameSize]
		if raw[len(raw)-1] != 0 {
			what := "name"
			if h.Type() == TypeSymlink {
				what = "symlink"
			}
			w.logf("initramfs %s without nulterm: %s", what, raw)
			return ErrMalformed
		}
		if i := bytes.IndexByte(raw, 0); i >= 0 {
			raw = raw[:i]
		}
		e := &Entry{Header: h, Name: string(raw)}
		if err := w.member(in, e, truncated); err != nil {
			return err
		}
	}
}

// member hands one member (its header and name read) to the sink and
// takes its data from in.
func (w *walker) member(in *counted, e *Entry, truncated func() error) error {
	h := &e.Header
	skipData := func() error {
		short, err := in.skip(int64(h.FileSize))
		if err != nil {
			return err
		}
		if short {
			return truncated()
		}
		return nil
	}
	if e.Name == Trailer {
		if err := skipData(); err != nil {
			return err
		}
		w.links = nil
		return w.s.EndArchive()
	}
	switch h.Type() {
	case TypeRegular:
		w.hardLink(e)
		d := &data{in: in, left: int64(h.FileSize), crc: h.Magic == MagicCRC}
		serr := w.s.Entry(e, d)
		io.Copy(io.Discard, d) // what the sink left
		switch {
		case d.err != nil:
			return d.err
		case d.short:
			return truncated()
		case serr != nil:
			return serr
		case d.crc && d.sum != h.Check:
			return ErrChecksum
		}
		return nil
	case TypeSymlink:
		if h.FileSize >= PathMax {
			return skipData()
		}
		t, short, err := in.read(int(h.FileSize))
		if err != nil {
			return err
		}
		if short {
			return truncated()
		}
		if i := bytes.IndexByte(t, 0); i >= 0 {
			t = t[:i]
		}
		e.Target = string(t)
		return w.s.Entry(e, nil)
	case TypeDir:
		if err := skipData(); err != nil {
			return err
		}
		return w.s.Entry(e, nil)
	case TypeChar, TypeBlock, TypeFIFO, TypeSocket:
		if err := skipData(); err != nil {
			return err
		}
		w.hardLink(e)
		return w.s.Entry(e, nil)
	}
	return skipData() // no file type: nothing to make
}

// hardLink sets e.LinkTo when e is a further name of a multiply linked
// member seen earlier in this archive, and otherwise remembers e.
func (w *walker) hardLink(e *Entry) {
	if e.NLink < 2 {
		return
	}
	k := linkKey{e.Ino, e.DevMajor, e.DevMinor, e.Type()}
	if first, ok := w.links[k]; ok {
		e.LinkTo = first
		return
	}
	if w.links == nil {
		w.links = map[linkKey]string{}
	}
	w.links[k] = e.Name
}

// data is a regular member's data as the sink reads it.
type data struct {
	in    *counted
	left  int64
	crc   bool
	sum   uint32
	short bool  // the input ended first
	err   error // a fault of the input (a decoder's)
}

func (d *data) Read(p []byte) (int, error) {
	if d.left == 0 || d.short {
		return 0, io.EOF
	}
	if d.err != nil {
		return 0, d.err
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.in.Read(p)
	d.left -= int64(n)
	if d.crc {
		d.sum = Checksum(d.sum, p[:n])
	}
	switch {
	case err == io.EOF:
		if d.left > 0 {
			d.short = true
		}
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	case err != nil:
		d.err = err
	}
	return n, err
}
