package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// record is a Sink that lists what it is given.
type record struct {
	lines []string
	limit int // stop reading data after this many bytes per file (0: all)
}

func (r *record) Entry(e *Entry, data io.Reader) error {
	line := fmt.Sprintf("%06o %d:%d %s", e.Mode, e.UID, e.GID, e.Name)
	if e.Target != "" {
		line += " -> " + e.Target
	}
	if e.LinkTo != "" {
		line += " = " + e.LinkTo
	}
	if data != nil {
		var b []byte
		var err error
		if r.limit > 0 {
			b, err = io.ReadAll(io.LimitReader(data, int64(r.limit)))
		} else {
			b, err = io.ReadAll(data)
		}
		if err != nil {
			return err
		}
		line += fmt.Sprintf(" [%d %08x]", len(b), crc32.ChecksumIEEE(b))
	}
	r.lines = append(r.lines, line)
	return nil
}

func (r *record) EndArchive() error {
	r.lines = append(r.lines, "TRAILER")
	return nil
}

// gzipDecoder is a Decoder for tests: the standard library's gzip, one
// member at a time (it reads no further than the member: Source is an
// io.ByteReader).
func gzipDecoder(src *Source) (io.Reader, error) {
	z, err := gzip.NewReader(src)
	if err != nil {
		return nil, ErrDecompressor
	}
	z.Multistream(false)
	return readerFunc(func(p []byte) (int, error) {
		n, err := z.Read(p)
		if err != nil && err != io.EOF {
			return n, Errorf("read error")
		}
		return n, err
	}), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

var testOpts = Options{Decoders: map[Method]Decoder{Gzip: gzipDecoder}}

func walk(t *testing.T, img []byte) ([]string, []string, error) {
	t.Helper()
	var logs []string
	o := testOpts
	o.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	r := &record{}
	err := Walk(bytes.NewReader(img), int64(len(img)), o, r)
	return r.lines, logs, err
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	z.Write(b)
	z.Close()
	return buf.Bytes()
}

func pad(b []byte, n int) []byte {
	for len(b)%n != 0 {
		b = append(b, 0)
	}
	return b
}

// archive builds a newc archive with a trailer, padded to 512 bytes as
// GNU cpio pads it.
func archive(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, e...)
	}
	return pad(AppendTrailer(b), 512)
}

func ent(mode uint32, name string, data string) []byte {
	return AppendEntry(nil, Header{Mode: mode, NLink: 1}, name, []byte(data))
}

func sum(s string) string { return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(s))) }

func TestGolden(t *testing.T) {
	want := []string{
		"040755 0:0 .",
		"040755 0:0 dir",
		"040755 0:0 dir/sub",
		"104755 0:0 dir/sub/big [1000 " + sum(strings.Repeat("x", 1000)) + "]",
		"010644 0:0 fifo",
		"100644 0:0 dir/file [0 00000000]",
		"100644 0:0 hard = dir/file [6 " + sum("hello\n") + "]",
		"120777 0:0 link -> dir/file",
		"TRAILER",
	}
	for _, name := range []string{"gnu-newc.cpio", "gnu-crc.cpio"} {
		img, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := walk(t, img)
		if err != nil {
			t.Fatalf("%s: Walk = %v", name, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: entries (-want +got):\n%s", name, d)
		}
		// Every header re-encodes to the bytes GNU cpio wrote.
		off := 0
		for {
			var h Header
			if err := h.UnmarshalBinary(img[off:]); err != nil {
				t.Fatalf("%s@%d: %v", name, off, err)
			}
			b, _ := h.MarshalBinary()
			if !bytes.Equal(b, img[off:off+HeaderSize]) {
				t.Errorf("%s@%d: re-encoded header\n%q\nwant\n%q", name, off, b, img[off:off+HeaderSize])
			}
			nm := string(img[off+HeaderSize : off+HeaderSize+int(h.NameSize)-1])
			off = (off + HeaderSize + int(h.NameSize) + 3) &^ 3
			off = (off + int(h.FileSize) + 3) &^ 3
			if nm == Trailer {
				break
			}
		}
	}
	img, _ := os.ReadFile("testdata/gnu-odc.cpio")
	if _, _, err := walk(t, img); !errors.Is(err, ErrOldCpio) || err.Error() != "incorrect cpio method used: use -H newc option" {
		t.Errorf("odc archive: Walk = %v; want %v", err, ErrOldCpio)
	}
}

func TestWalk(t *testing.T) {
	a := archive(ent(TypeDir|0o755, "bin", ""), ent(TypeRegular|0o755, "init", "#!/bin/sh\n"))
	b := archive(ent(TypeRegular|0o644, "early", "ucode"))
	aLines := []string{"040755 0:0 bin", "100755 0:0 init [10 " + sum("#!/bin/sh\n") + "]", "TRAILER"}
	bLines := []string{"100644 0:0 early [5 " + sum("ucode") + "]", "TRAILER"}
	noTrailer := append(ent(TypeDir|0o755, "bin", ""), ent(TypeRegular|0o755, "init", "#!/bin/sh\n")...)
	cutData := a[:116+116+4] // inside init's data (bin's member and init's header and name are 116 bytes each)
	crcBad := AppendEntry(nil, Header{Magic: MagicCRC, Mode: TypeRegular | 0o644, NLink: 1}, "f", []byte("abc"))
	crcBad[HeaderSize-1] ^= 1 // flip the check's last digit
	odd := append([]byte{}, a...)
	odd = append(odd, 0, 0, 0) // 3 bytes of padding: the next archive is unaligned
	tests := []struct {
		name  string
		img   []byte
		want  []string
		err   error
		logs  []string
		limit int
	}{
		{name: "one archive", img: a, want: aLines},
		{name: "two archives", img: append(append([]byte{}, b...), a...), want: append(append([]string{}, bLines...), aLines...)},
		{name: "zero padding around", img: append(append(make([]byte, 8), b...), make([]byte, 1000)...), want: bLines},
		{name: "uncompressed then gzip (microcode)", img: append(append(append([]byte{}, b...), make([]byte, 512)...), gz(t, a)...), want: append(append([]string{}, bLines...), aLines...)},
		{name: "gzip then gzip", img: append(gz(t, b), gz(t, a)...), want: append(append([]string{}, bLines...), aLines...)},
		{name: "two archives in one gzip member", img: gz(t, append(append([]byte{}, b...), a...)), want: append(append([]string{}, bLines...), aLines...)},
		{name: "gzip then padding", img: append(gz(t, a), make([]byte, 100)...), want: aLines},
		{name: "junk after the image", img: append(append([]byte{}, a...), "junk"...), want: aLines, err: ErrInvalidMagic},
		{name: "junk", img: []byte("this is not an initramfs"), err: ErrInvalidMagic},
		{name: "unaligned archive", img: append([]byte{0, 0, 0}, a...), err: ErrInvalidMagic},
		{name: "broken padding", img: append(odd, b...), want: aLines, err: ErrBrokenPadding},
		{name: "uncompressed without trailer", img: noTrailer, want: aLines[:2]},
		{name: "uncompressed cut in data", img: cutData, want: []string{"040755 0:0 bin", "100755 0:0 init [4 " + sum("#!/b") + "]"}},
		{name: "gzip without trailer", img: gz(t, noTrailer), want: aLines[:2], err: nil},
		{name: "gzip cut in data", img: gz(t, cutData), want: []string{"040755 0:0 bin", "100755 0:0 init [4 " + sum("#!/b") + "]"}, err: ErrJunkEnd},
		{name: "gzip of a short junk", img: gz(t, []byte("garbage here")), err: ErrJunkEnd},
		{name: "gzip of junk", img: gz(t, bytes.Repeat([]byte("g"), 200)), err: ErrNoMagic},
		{name: "junk after the trailer in gzip", img: gz(t, append(append([]byte{}, a...), "junk"...)), want: aLines, err: ErrJunkWithin},
		{name: "truncated gzip", img: gz(t, a)[:40], want: []string{"040755 0:0 bin"}, err: Errorf("read error")},
		{name: "lzo not configured", img: []byte("\x89LZO\x00\r\n\x1a\n"), err: Errorf("compression method lzo not configured")},
		{name: "bad crc", img: archive(crcBad), want: []string{"100644 0:0 f [3 " + sum("abc") + "]"}, err: ErrChecksum},
		{name: "good crc", img: archive(AppendEntry(nil, Header{Magic: MagicCRC, Mode: TypeRegular | 0o644, NLink: 1}, "f", []byte("abc"))), want: []string{"100644 0:0 f [3 " + sum("abc") + "]", "TRAILER"}},
		{name: "crc checked although the sink reads nothing", limit: 1, img: archive(crcBad), want: []string{"100644 0:0 f [1 " + sum("a") + "]"}, err: ErrChecksum},
		{
			name: "name size 0 and too long are skipped",
			img: archive(
				func() []byte { e := ent(TypeRegular|0o644, "x", "hi"); copy(e[6+11*8:], "00000000"); return e }(),
				ent(TypeRegular|0o644, strings.Repeat("y", PathMax), "hi"),
				ent(TypeRegular|0o644, "ok", "fine")),
			want: []string{"100644 0:0 ok [4 " + sum("fine") + "]", "TRAILER"},
		},
		{
			name: "name without NUL",
			img:  archive(func() []byte { e := ent(TypeRegular|0o644, "abc", "hi"); copy(e[6+11*8:], "00000003"); return e }()),
			err:  ErrMalformed, logs: []string{"initramfs name without nulterm: abc"},
		},
		{
			name: "hard links (data on the last, as GNU cpio)",
			img: archive(
				AppendEntry(nil, Header{Mode: TypeRegular | 0o644, NLink: 2, Ino: 7}, "h1", nil),
				AppendEntry(nil, Header{Mode: TypeRegular | 0o644, NLink: 2, Ino: 7}, "h2", []byte("data")),
				AppendEntry(nil, Header{Mode: TypeRegular | 0o644, NLink: 2, Ino: 8}, "other", nil)),
			want: []string{"100644 0:0 h1 [0 00000000]", "100644 0:0 h2 = h1 [4 " + sum("data") + "]", "100644 0:0 other [0 00000000]", "TRAILER"},
		},
		{
			name: "hard links do not cross archives",
			img: append(archive(AppendEntry(nil, Header{Mode: TypeRegular | 0o644, NLink: 2, Ino: 7}, "h1", nil)),
				archive(AppendEntry(nil, Header{Mode: TypeRegular | 0o644, NLink: 2, Ino: 7}, "h2", nil))...),
			want: []string{"100644 0:0 h1 [0 00000000]", "TRAILER", "100644 0:0 h2 [0 00000000]", "TRAILER"},
		},
		{
			name: "kinds",
			img: archive(
				AppendEntry(nil, Header{Mode: TypeChar | 0o600, NLink: 1, RDevMajor: 5, RDevMinor: 1, UID: 7, GID: 8}, "dev/console", nil),
				ent(TypeSymlink|0o777, "l", "target\x00ignored"),
				ent(TypeSymlink|0o777, "long", strings.Repeat("t", PathMax)),
				ent(0o644, "notype", "data"),
				ent(TypeFIFO|0o644, "p", "")),
			want: []string{"020600 7:8 dev/console", "120777 0:0 l -> target", "010644 0:0 p", "TRAILER"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs []string
			o := testOpts
			o.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
			r := &record{limit: tc.limit}
			err := Walk(bytes.NewReader(tc.img), int64(len(tc.img)), o, r)
			if !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
				t.Errorf("Walk = %v; want %v", err, tc.err)
			}
			if d := cmp.Diff(tc.want, r.lines); d != "" {
				t.Errorf("entries (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.logs, logs); d != "" {
				t.Errorf("log lines (-want +got):\n%s", d)
			}
		})
	}
}

// A gzip member followed right away by an archive at an offset that is not
// a multiple of 4 is refused, as Linux refuses it.
func TestArchiveAfterGzipAlignment(t *testing.T) {
	a := archive(ent(TypeRegular|0o644, "f", "x"))
	for extra := 0; extra < 4; extra++ {
		z := gz(t, a)
		z = append(z, make([]byte, extra)...)
		img := append(z, a...)
		_, _, err := walk(t, img)
		aligned := len(z)%4 == 0
		if aligned && err != nil || !aligned && !errors.Is(err, ErrInvalidMagic) {
			t.Errorf("archive at offset %d: Walk = %v", len(z), err)
		}
	}
}

type failSink struct{ record }

func (f *failSink) Entry(e *Entry, data io.Reader) error {
	if data != nil {
		return ErrWrite
	}
	return f.record.Entry(e, data)
}

func TestSinkError(t *testing.T) {
	img := archive(ent(TypeDir|0o755, "d", ""), ent(TypeRegular|0o644, "f", "data"), ent(TypeDir|0o755, "e", ""))
	s := &failSink{}
	if err := Walk(bytes.NewReader(img), int64(len(img)), testOpts, s); !errors.Is(err, ErrWrite) || err.Error() != "write error" {
		t.Errorf("Walk = %v; want %v", err, ErrWrite)
	}
	if d := cmp.Diff([]string{"040755 0:0 d"}, s.lines); d != "" {
		t.Errorf("entries after the failure (-want +got):\n%s", d)
	}
}

func TestHeader(t *testing.T) {
	h := Header{Magic: MagicCRC, Ino: 1, Mode: 0o100644, UID: 2, GID: 3, NLink: 4, MTime: 0xdeadbeef, FileSize: 6, DevMajor: 7,
		DevMinor: 8, RDevMajor: 9, RDevMinor: 10, NameSize: 11, Check: 0xffffffff}
	b, err := h.MarshalBinary()
	if err != nil || len(b) != HeaderSize {
		t.Fatalf("MarshalBinary = %q, %v", b, err)
	}
	var g Header
	if err := g.UnmarshalBinary(b); err != nil || g != h {
		t.Errorf("round trip = %+v, %v; want %+v", g, err, h)
	}
	for _, tc := range []struct {
		in  string
		err error
	}{
		{"0707", ErrShortHeader},
		{"070707" + strings.Repeat("0", 104), ErrOldFormat},
		{"070703" + strings.Repeat("0", 104), ErrBadMagic},
	} {
		if err := g.UnmarshalBinary([]byte(tc.in)); err != tc.err {
			t.Errorf("UnmarshalBinary(%q) = %v; want %v", tc.in, err, tc.err)
		}
	}
	// A field is the value of its leading hex digits, as Linux reads it.
	b = []byte(MagicNewc + "0000001G" + strings.Repeat("0", 96))
	if err := g.UnmarshalBinary(b); err != nil || g.Ino != 1 {
		t.Errorf("Ino of %q = %d, %v; want 1", b[6:14], g.Ino, err)
	}
	if _, err := (&Header{Magic: "070707"}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary with an odc magic succeeded")
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Method
	}{
		{"\x1f\x8b\x08", Gzip}, {"BZh9", Bzip2}, {"\x5d\x00\x00\x80", LZMA}, {"\xfd7zXZ\x00\x00", XZ},
		{"\x89LZO\x00", LZO}, {"\x02\x21\x4c\x18", LZ4}, {"\x28\xb5\x2f\xfd", Zstd},
		{"\x04\x22\x4d\x18", None}, {"0707", None}, {"", None},
	} {
		if got := Detect([]byte(tc.in)); got != tc.want {
			t.Errorf("Detect(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}
