package cow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzHeader seeds from the tables and golden files")

// Hand-built headers, written field by field from the tables of
// shared/spec/cow.md §2 (independently of MarshalBinary).
func handV1(path string, mtime uint32, size uint64, ss int32) []byte {
	b := make([]byte, 280)
	binary.LittleEndian.PutUint32(b[0:], 0x4F4F4F4D)
	binary.LittleEndian.PutUint32(b[4:], 1)
	copy(b[8:264], path)
	binary.LittleEndian.PutUint32(b[264:], mtime)
	binary.LittleEndian.PutUint64(b[268:], size)
	binary.LittleEndian.PutUint32(b[276:], uint32(ss))
	return b
}

func handV2(path string, mtime uint32, size uint64, ss int32) []byte {
	b := make([]byte, 4120)
	copy(b, "OOOM")
	binary.BigEndian.PutUint32(b[4:], 2)
	copy(b[8:4104], path)
	binary.BigEndian.PutUint32(b[4104:], mtime)
	binary.BigEndian.PutUint64(b[4108:], size)
	binary.BigEndian.PutUint32(b[4116:], uint32(ss))
	return b
}

func handV3(path string, mtime uint32, size uint64, ss, align uint32) []byte {
	b := make([]byte, 4128)
	copy(b, "OOOM")
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint32(b[8:], mtime)
	binary.BigEndian.PutUint64(b[12:], size)
	binary.BigEndian.PutUint32(b[20:], ss)
	binary.BigEndian.PutUint32(b[24:], align)
	copy(b[32:], path)
	return b
}

func handBrokenV3(path string, mtime uint32, size uint64, ss, align uint32) []byte {
	b := make([]byte, 4136)
	copy(b, "OOOM")
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint32(b[8:], mtime)
	binary.BigEndian.PutUint64(b[16:], size)
	binary.BigEndian.PutUint32(b[24:], ss)
	binary.BigEndian.PutUint32(b[28:], align)
	copy(b[36:], path)
	return b
}

var tests = []struct {
	name string
	raw  []byte
	want *Header
	err  error
	msg  string // ReaderMessage
}{
	{name: "v1", raw: handV1("/b/root_fs", 1700000000, 51200, 512),
		want: &Header{Version: 1, BackingFile: "/b/root_fs", Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 512}},
	{name: "v2", raw: handV2("/b/root_fs", 1700000000, 51200, 512),
		want: &Header{Version: 2, BackingFile: "/b/root_fs", Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 512}},
	{name: "v3", raw: handV3("/b/root_fs", 1700000000, 51200, 512, 4096),
		want: &Header{Version: 3, BackingFile: "/b/root_fs", Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 4096}},
	{name: "v3 align 512", raw: handV3("/x", 7, 1024, 512, 512),
		want: &Header{Version: 3, BackingFile: "/x", Mtime: 7, Size: 1024, SectorSize: 512, Alignment: 512}},
	{name: "broken v3", raw: handBrokenV3("/b/root_fs", 1700000000, 51200, 512, 4096),
		want: &Header{Version: 3, Broken: true, BackingFile: "/b/root_fs", Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 4096}},
	{name: "v1 host-order magic, version 3 big-endian fields",
		raw:  append([]byte("MOOO\x03\x00\x00\x00"), handV3("/y", 1, 512, 512, 4096)[8:]...),
		want: &Header{Version: 3, BackingFile: "/y", Mtime: 1, Size: 512, SectorSize: 512, Alignment: 4096}},
	{name: "short", raw: []byte("OOOM\x00\x00"), err: ErrShortHeader, msg: "read_cow_header - short header"},
	{name: "not cow", raw: make([]byte, 100), err: ErrNotCOW},
	{name: "bad version", raw: []byte("OOOM\x00\x00\x00\x04"), err: ErrBadVersion, msg: "read_cow_header - invalid COW version"},
	{name: "truncated v1", raw: handV1("/a", 1, 2, 512)[:279], err: ErrTruncated, msg: "read_cow_header - failed to read V1 header"},
	{name: "truncated v2", raw: handV2("/a", 1, 2, 512)[:4119], err: ErrTruncated, msg: "read_cow_header - failed to read V2 header"},
	{name: "truncated v3", raw: handV3("/a", 1, 2, 512, 4096)[:4127], err: ErrTruncated, msg: "read_cow_header - failed to read V3 header"},
	{name: "truncated broken v3", raw: []byte("OOOM\x00\x00\x00\x03"), err: ErrTruncated, msg: "read_cow_header - failed to read V3 header"},
	{name: "align 0", raw: handV3("/a", 1, 2, 512, 0), err: ErrBadAlignment, msg: "read_cow_header - invalid COW header, align == 0"},
	{name: "sector size 0", raw: handV2("/a", 1, 2, 0), err: ErrBadSectorSize},
	{name: "negative sector size", raw: handV1("/a", 1, 2, -512), err: ErrBadSectorSize},
	{name: "too large", raw: handV3("/a", 1, 1<<63, 512, 4096), err: ErrTooLarge},
}

func TestUnmarshal(t *testing.T) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			err := h.UnmarshalBinary(tt.raw)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("UnmarshalBinary = %v; want %v", err, tt.err)
				}
				if got := ReaderMessage(err); got != tt.msg {
					t.Errorf("ReaderMessage(%v) = %q; want %q", err, got, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.want, &h); diff != "" {
				t.Errorf("UnmarshalBinary mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBrokenFlagSurvivesTruncation(t *testing.T) {
	// uml_moo prints the broken-layout message before "failed to read V3
	// header" for an 8-byte file: callers need Broken even on error.
	var h Header
	err := h.UnmarshalBinary([]byte("OOOM\x00\x00\x00\x03"))
	if !errors.Is(err, ErrTruncated) || !h.Broken || h.Version != 3 {
		t.Errorf("UnmarshalBinary(8 bytes v3) = %v, Broken=%v Version=%d; want ErrTruncated, true, 3", err, h.Broken, h.Version)
	}
}

func TestMarshalMatchesHandBuilt(t *testing.T) {
	for _, tt := range tests {
		if tt.want == nil || tt.name == "v1 host-order magic, version 3 big-endian fields" {
			continue
		}
		got, err := tt.want.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: MarshalBinary: %v", tt.name, err)
		}
		if !bytes.Equal(got, tt.raw) {
			t.Errorf("%s: MarshalBinary differs from the hand-built header", tt.name)
		}
	}
}

func TestLayout(t *testing.T) {
	// Examples verified against the real tools (shared/spec/cow.md §4).
	for _, tt := range []struct {
		h                             Header
		bitmapOff, bitmapLen, dataOff int64
		fileLen                       int64
	}{
		{Header{Version: 3, Size: 51200, SectorSize: 512, Alignment: 4096}, 8192, 13, 12288, 63488},
		{Header{Version: 1, Size: 51200, SectorSize: 512, Alignment: 512}, 280, 12, 512, 51712},
		{Header{Version: 2, Size: 51200, SectorSize: 512, Alignment: 512}, 4120, 12, 4608, 55808},
		{Header{Version: 3, Size: 51200, SectorSize: 512, Alignment: 512}, 4608, 13, 5120, 56320},
		{Header{Version: 3, Broken: true, Size: 51200, SectorSize: 512, Alignment: 4096}, 8192, 13, 12288, 63488},
		{Header{Version: 3, Size: 1073741825, SectorSize: 512, Alignment: 4096}, 8192, 262145, 274432, 1074016257},
		{Header{Version: 3, Size: 0, SectorSize: 512, Alignment: 4096}, 8192, 0, 8192, 8192},
	} {
		h := tt.h
		if got := [4]int64{h.BitmapOffset(), h.BitmapLen(), h.DataOffset(), h.FileLen()}; got != [4]int64{tt.bitmapOff, tt.bitmapLen, tt.dataOff, tt.fileLen} {
			t.Errorf("v%d broken=%v size %d align %d: offset/len/data/file = %v; want %v", h.Version, h.Broken, h.Size, h.Alignment,
				got, [4]int64{tt.bitmapOff, tt.bitmapLen, tt.dataOff, tt.fileLen})
		}
	}
}

func TestNew(t *testing.T) {
	h, err := New("/tmp/x", 5000000000, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if h.Mtime != 705032704 || h.SectorSize != 512 || h.Alignment != 4096 || h.Version != 3 {
		t.Errorf("New = %+v; want mtime 705032704 (low 32 bits), 512/4096, v3", h)
	}
	long := "/" + string(bytes.Repeat([]byte("a"), 4095))
	if _, err := New(long, 0, 0); !errors.Is(err, ErrBackingTooLong) {
		t.Errorf("New(4096-char name) = %v; want ErrBackingTooLong", err)
	}
	if _, err := New(long[:4095], 0, 0); err != nil {
		t.Errorf("New(4095-char name) = %v; want nil", err)
	}
}

func TestValidate(t *testing.T) {
	h := &Header{Version: 3, Size: 51200, Mtime: 1700000000, SectorSize: 512, Alignment: 4096}
	if err := h.Validate("/b", 51200, 1700000000); err != nil {
		t.Errorf("Validate(match) = %v", err)
	}
	err := h.Validate("/b", 51712, 1700000000)
	if !errors.Is(err, ErrSizeMismatch) || err.Error() != `Size mismatch (51200 vs 51712) of COW header vs backing file "/b"` {
		t.Errorf("Validate(size) = %v", err)
	}
	err = h.Validate("/b", 51200, 1700000001)
	if !errors.Is(err, ErrMtimeMismatch) || err.Error() != `mtime mismatch (1700000000 vs 1700000001) of COW header vs backing file "/b"` {
		t.Errorf("Validate(mtime) = %v", err)
	}
	// The stored value is 32 bits; a 64-bit st_mtime beyond 2^32 never matches.
	h.Mtime = 705032704
	if err := h.Validate("/b", 51200, 5000000000); !errors.Is(err, ErrMtimeMismatch) {
		t.Errorf("Validate(mtime > 2^32) = %v; want ErrMtimeMismatch", err)
	}
}

func TestRun(t *testing.T) {
	bm := []byte{0xF0, 0xFF, 0x00, 0x01}
	for _, tt := range []struct {
		s, max int64
		dirty  bool
		n      int64
	}{
		{0, 100, false, 4}, {4, 100, true, 12}, {16, 100, false, 8}, {24, 100, true, 1},
		{25, 100, false, 100}, {4, 6, true, 6}, {30, 2, false, 2},
	} {
		d, n := Run(bm, tt.s, tt.max)
		if d != tt.dirty || n != tt.n {
			t.Errorf("Run(%08b, %d, %d) = %v, %d; want %v, %d", bm, tt.s, tt.max, d, n, tt.dirty, tt.n)
		}
	}
}

type golden struct {
	file string
	want Header
}

var goldens = []golden{
	// made by /usr/bin/uml_mkcow (see testdata/README)
	{"mkcow-51200.bin", Header{Version: 3, BackingFile: "/tmp/umlkit-golden/back.img", Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 4096}},
	{"mkcow-odd.bin", Header{Version: 3, BackingFile: "/tmp/umlkit-golden/odd.img", Mtime: 4102444800, Size: 1073741825, SectorSize: 512, Alignment: 4096}},
	{"mkcow-far.bin", Header{Version: 3, BackingFile: "/tmp/umlkit-golden/far.img", Mtime: 705032704, Size: 4096, SectorSize: 512, Alignment: 4096}},
	// made by /usr/bin/linux.uml auto-creating ubd0's COW file
	{"kernel.bin", Header{Version: 3, BackingFile: "/tmp/umlkit-golden/root.img", Mtime: 1700000000, Size: 16 << 20, SectorSize: 512, Alignment: 4096}},
	{"kernel-dd.bin", Header{Version: 3, BackingFile: "/tmp/umlkit-golden/b2.img", Mtime: 1700000000, Size: 1 << 20, SectorSize: 512, Alignment: 4096}},
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		raw, err := os.ReadFile(filepath.Join("testdata", g.file))
		if err != nil {
			t.Fatal(err)
		}
		var h Header
		if err := h.UnmarshalBinary(raw); err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		if diff := cmp.Diff(g.want, h); diff != "" {
			t.Errorf("%s (-want +got):\n%s", g.file, diff)
		}
		enc, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		// Bytes after the path's NUL are unspecified (the kernel leaves heap
		// garbage there): compare with them zeroed.
		want := append([]byte(nil), raw[:len(enc)]...)
		clear(want[32+len(h.BackingFile):])
		if !bytes.Equal(enc, want) {
			t.Errorf("%s: re-encoding differs from the real tool's header", g.file)
		}
	}
}

func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, tt := range tests {
		out = append(out, tt.raw)
	}
	for _, g := range goldens {
		raw, err := os.ReadFile(filepath.Join("testdata", g.file))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw[:HeaderReadSize])
	}
	return out
}

func TestWriteCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHeader")
	os.MkdirAll(dir, 0o755)
	for i, s := range seeds(t) {
		data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzHeader: decoding never panics; decode→encode→decode is stable; the
// layout of a decoded header is consistent.
func FuzzHeader(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Header
		if err := h.UnmarshalBinary(data); err != nil {
			return
		}
		if h.DataOffset() < h.BitmapOffset()+h.BitmapLen() || h.BitmapOffset() < int64(h.Len()) || h.FileLen() < h.DataOffset() {
			t.Fatalf("inconsistent layout for %+v", h)
		}
		enc, err := h.MarshalBinary()
		if err != nil {
			if h.Version == 3 && !h.Broken && h.BackingFile == "" {
				return // cannot be encoded: it would read back as broken
			}
			t.Fatalf("MarshalBinary(%+v): %v", h, err)
		}
		var h2 Header
		if err := h2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if h != h2 {
			t.Fatalf("round trip:\n%+v\n%+v", h, h2)
		}
		enc2, _ := h2.MarshalBinary()
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
	})
}
