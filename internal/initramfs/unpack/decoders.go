package unpack

import (
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/umlkit/umlkit/internal/initramfs"
)

// Decoders returns a decoder for every method Linux's initramfs takes,
// except lzo (no well-kept Go decoder of lzop's format; such an image
// fails with the kernel's "compression method lzo not configured"). Each
// decodes one member, reads no further than its end, and fails with the
// text the kernel's decompressor prints for the same fault where one was
// observed (linux.uml 6.1), else "decompressor failed".
func Decoders() map[initramfs.Method]initramfs.Decoder {
	return map[initramfs.Method]initramfs.Decoder{
		initramfs.Gzip:  gzipMember,
		initramfs.Bzip2: bzip2Member,
		initramfs.LZMA:  lzmaMember,
		initramfs.XZ:    xzMember,
		initramfs.LZ4:   lz4Member,
		initramfs.Zstd:  zstdMember,
	}
}

// maxDict bounds the dictionary (window) a .lzma header or zstd frame may
// ask for: xz -9 and zstd --ultra -22 use 64 and 128 MiB. (xz's LZMA2
// blocks take the size their header names; the library has no bound.)
var maxDict = 512 << 20

// Texts of the kernel's decompressors (observed).
var (
	errGzipRead    = initramfs.Errorf("read error")
	errGzipCRC     = initramfs.Errorf("crc error")
	errXZCorrupt   = initramfs.Errorf("XZ-compressed data is corrupt")
	errXZOptions   = initramfs.Errorf("Input was encoded with settings that are not supported by this XZ decoder")
	errZstdShort   = initramfs.Errorf("ZSTD-compressed data is truncated")
	errZstdCorrupt = initramfs.Errorf("ZSTD-compressed data is corrupt")
	errLZMAShort   = initramfs.Errorf("unexpected EOF")
	errLZMACorrupt = initramfs.Errorf("LZMA data is corrupt")
	errLZ4         = initramfs.Errorf("Decoding failed")
)

// decoded is a member's decompressed stream: end maps the first error
// (io.EOF included) of r.
type decoded struct {
	r   io.Reader
	end func(error) error
	err error
}

func (d *decoded) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.r.Read(p)
	if err != nil {
		d.err = d.end(err)
		if n > 0 && d.err == io.EOF {
			return n, nil
		}
		return n, d.err
	}
	return n, nil
}

func short(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) }

// gzipMember: one gzip member. The reader takes single bytes from the
// Source (an io.ByteReader), so it stops right after the member's trailer.
func gzipMember(src *initramfs.Source) (io.Reader, error) {
	z, err := gzip.NewReader(src)
	if err != nil {
		if short(err) {
			return nil, errGzipRead
		}
		return nil, initramfs.ErrDecompressor
	}
	z.Multistream(false)
	return &decoded{r: z, end: func(err error) error {
		switch {
		case err == io.EOF:
			return io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errGzipRead
		case errors.Is(err, gzip.ErrChecksum):
			return errGzipCRC
		}
		return initramfs.ErrDecompressor
	}}, nil
}

// bzip2Member: a bzip2 stream (and the streams concatenated to it). After
// a stream the reader looks at two more bytes for another one; when they
// are something else they belong to what follows.
func bzip2Member(src *initramfs.Source) (io.Reader, error) {
	return &decoded{r: bzip2.NewReader(src), end: func(err error) error {
		if err == io.EOF {
			return io.EOF
		}
		if err.Error() == "bzip2 data invalid: bad magic value in continuation file" {
			src.Unread(2)
			return io.EOF
		}
		return initramfs.ErrDecompressor
	}}, nil
}

// xzMember: one xz stream. Linux's decoder takes only the CRC32 check (or
// none); the reader looks at one byte past the stream for another one.
func xzMember(src *initramfs.Source) (io.Reader, error) {
	if h, _ := src.Peek(8); len(h) == 8 && h[7]&0x0f > 1 {
		return nil, errXZOptions
	}
	r, err := xz.ReaderConfig{SingleStream: true, DictCap: lzma.MinDictCap}.NewReader(src) // the blocks' own size
	if err != nil {
		return nil, errXZCorrupt
	}
	return &decoded{r: r, end: func(err error) error {
		switch {
		case err == io.EOF:
			return io.EOF
		case err.Error() == "xz: unexpected data after stream":
			src.Unread(1)
			return io.EOF
		}
		return errXZCorrupt
	}}, nil
}

// lzmaMember: one .lzma ("alone") stream.
func lzmaMember(src *initramfs.Source) (io.Reader, error) {
	r, err := lzma.ReaderConfig{DictCap: maxDict}.NewReader(src)
	if err != nil {
		if short(err) {
			return nil, errLZMAShort
		}
		return nil, errLZMACorrupt
	}
	return &decoded{r: r, end: func(err error) error {
		switch {
		case err == io.EOF:
			return io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errLZMAShort
		}
		return errLZMACorrupt
	}}, nil
}

// zstdMember: one zstd frame, cut out of the image by zstdFrame so that
// the decoder (which reads ahead) sees its end.
func zstdMember(src *initramfs.Source) (io.Reader, error) {
	d, err := zstd.NewReader(&zstdFrame{src: src}, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(uint64(maxDict)))
	if err != nil {
		return nil, errZstdCorrupt
	}
	return &decoded{r: d, end: func(err error) error {
		d.Close()
		switch {
		case err == io.EOF:
			return io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errZstdShort
		}
		return errZstdCorrupt
	}}, nil
}

// zstdFrame passes one zstd frame through (RFC 8878 §3.1.1: magic, frame
// header, blocks until the last, optional checksum) and then ends.
type zstdFrame struct {
	src   *initramfs.Source
	stage int    // what comes after pend and left
	pend  []byte // header bytes read and not yet passed on
	left  int64  // block bytes still to pass on
	check bool   // the frame ends with a 4-byte checksum
}

const (
	zsFrameHeader = iota
	zsBlockHeader
	zsChecksum
	zsEnd
)

var errZstdReserved = errors.New("zstd: reserved block type")

func (z *zstdFrame) take(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(z.src, b); err != nil {
		if short(err) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	z.pend = append(z.pend, b...)
	return b, nil
}

func (z *zstdFrame) Read(p []byte) (int, error) {
	for {
		if len(z.pend) > 0 {
			n := copy(p, z.pend)
			z.pend = z.pend[n:]
			return n, nil
		}
		if z.left > 0 {
			if int64(len(p)) > z.left {
				p = p[:z.left]
			}
			n, err := z.src.Read(p)
			z.left -= int64(n)
			if n > 0 {
				return n, nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch z.stage {
		case zsFrameHeader:
			b, err := z.take(5) // magic and frame header descriptor
			if err != nil {
				return 0, err
			}
			fhd := b[4]
			n := 0
			if fhd&0x20 == 0 { // not single segment: a window descriptor
				n++
			}
			n += [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
			switch fcs := fhd >> 6; {
			case fcs == 0 && fhd&0x20 != 0:
				n++
			case fcs > 0:
				n += 1 << fcs
			}
			z.check = fhd&0x04 != 0
			if _, err := z.take(n); err != nil {
				return 0, err
			}
			z.stage = zsBlockHeader
		case zsBlockHeader:
			b, err := z.take(3)
			if err != nil {
				return 0, err
			}
			h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			switch (h >> 1) & 3 {
			case 0, 2: // raw, compressed
				z.left = int64(h >> 3)
			case 1: // RLE: one byte
				z.left = 1
			default:
				return 0, errZstdReserved
			}
			if h&1 != 0 {
				z.stage = zsChecksum
			}
		case zsChecksum:
			if z.check {
				z.left = 4
			}
			z.stage = zsEnd
		default:
			return 0, io.EOF
		}
	}
}

// lz4's legacy frame format (lz4 -l), as Linux reads it: the magic, then
// blocks of at most 8 MiB of output, each a 4-byte little-endian
// compressed size and the compressed bytes; the magic may come again. A
// size of 0, or fewer than 4 bytes left, ends the member.
const (
	lz4LegacyMagic = 0x184C2102
	lz4LegacyBlock = 8 << 20
)

type lz4Legacy struct {
	src *initramfs.Source
	out []byte // decompressed bytes not yet returned
	buf []byte
	in  []byte
}

func lz4Member(src *initramfs.Source) (io.Reader, error) {
	if _, err := io.ReadFull(src, make([]byte, 4)); err != nil {
		return nil, errLZ4
	}
	return &lz4Legacy{src: src}, nil
}

func (l *lz4Legacy) Read(p []byte) (int, error) {
	for len(l.out) == 0 {
		h, _ := l.src.Peek(4)
		if len(h) < 4 {
			return 0, io.EOF
		}
		size := binary.LittleEndian.Uint32(h)
		switch {
		case size == 0:
			return 0, io.EOF
		case size == lz4LegacyMagic:
			io.ReadFull(l.src, make([]byte, 4))
			continue
		case size > uint32(lz4.CompressBlockBound(lz4LegacyBlock)):
			return 0, errLZ4
		}
		io.ReadFull(l.src, make([]byte, 4))
		if cap(l.in) < int(size) {
			l.in = make([]byte, size)
		}
		in := l.in[:size]
		if _, err := io.ReadFull(l.src, in); err != nil {
			return 0, errLZ4
		}
		if l.buf == nil {
			l.buf = make([]byte, lz4LegacyBlock)
		}
		n, err := lz4.UncompressBlock(in, l.buf)
		if err != nil {
			return 0, errLZ4
		}
		l.out = l.buf[:n]
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}
