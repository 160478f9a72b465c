package initramfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzHeader: decoding never panics; a decoded header re-encodes to the
// same fields, and a header of hex digits re-encodes byte for byte
// (upper-case, as GNU cpio writes).
func FuzzHeader(f *testing.F) {
	for _, name := range []string{"gnu-newc.cpio", "gnu-crc.cpio", "gnu-odc.cpio"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:HeaderSize])
	}
	f.Add([]byte("0707"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if err := h.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded header: %v", err)
		}
		var g Header
		if err := g.UnmarshalBinary(enc); err != nil || g != h {
			t.Fatalf("round trip: %+v, %v; want %+v", g, err, h)
		}
		if bytes.Equal(bytes.ToUpper(b[:HeaderSize]), b[:HeaderSize]) && isHex(b[magicLen:HeaderSize]) && !bytes.Equal(enc, b[:HeaderSize]) {
			t.Fatalf("re-encoded %q as %q", b[:HeaderSize], enc)
		}
	})
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// bounded is a Sink for the fuzzer: it checks what Walk promises about
// entries and reads at most a little of each file.
type bounded struct {
	t       *testing.T
	entries int
}

func (b *bounded) Entry(e *Entry, data io.Reader) error {
	if len(e.Name) >= PathMax || len(e.Target) >= PathMax {
		b.t.Fatalf("entry name or target longer than PATH_MAX: %d, %d", len(e.Name), len(e.Target))
	}
	if (data != nil) != (e.Type() == TypeRegular) {
		b.t.Fatalf("data reader %v for mode %o", data != nil, e.Mode)
	}
	if data != nil {
		n, err := io.Copy(io.Discard, io.LimitReader(data, 1<<16))
		if n > int64(e.FileSize) {
			b.t.Fatalf("read %d bytes of a %d-byte file", n, e.FileSize)
		}
		if err != nil {
			return err
		}
	}
	b.entries++
	return nil
}

func (b *bounded) EndArchive() error { return nil }

// FuzzWalk: Walk never panics or loops, stops with nil or an *Error (the
// kernel's texts), and makes no more entries than the image has room for.
func FuzzWalk(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.cpio")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(gzBytes(b))
		f.Add(append(append(append([]byte{}, b...), make([]byte, 7)...), gzBytes(b)...))
	}
	f.Add(archive(AppendEntry(nil, Header{Magic: MagicCRC, Mode: TypeRegular | 0o644, NLink: 2, Ino: 3}, "a", []byte("x")),
		AppendEntry(nil, Header{Magic: MagicCRC, Mode: TypeRegular | 0o644, NLink: 2, Ino: 3}, "b", []byte("y"))))
	f.Fuzz(func(t *testing.T, img []byte) {
		s := &bounded{t: t}
		err := Walk(bytes.NewReader(img), int64(len(img)), testOpts, s)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Walk = %T %v; want an *Error", err, err)
		}
		if e != nil && e.Msg == "" {
			t.Fatal("an *Error without text")
		}
		// Every entry takes at least a header and a name block from the
		// (decompressed) image; gzip expands at most ~1032:1.
		if s.entries > (len(img)*1100)/(HeaderSize+2)+1 {
			t.Fatalf("%d entries from %d bytes", s.entries, len(img))
		}
	})
}

func gzBytes(b []byte) []byte {
	var t testing.T
	return gz(&t, b)
}
