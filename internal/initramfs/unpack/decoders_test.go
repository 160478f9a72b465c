package unpack

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/initramfs"
)

// list is a Sink that records what it is given.
type list []string

func (l *list) Entry(e *initramfs.Entry, data io.Reader) error {
	s := fmt.Sprintf("%06o %s", e.Mode, e.Name)
	if data != nil {
		b, err := io.ReadAll(data)
		if err != nil {
			return err
		}
		s += fmt.Sprintf(" %d:%08x", len(b), crc32.ChecksumIEEE(b))
	}
	*l = append(*l, s)
	return nil
}

func (l *list) EndArchive() error {
	*l = append(*l, "TRAILER")
	return nil
}

func walk(img []byte) ([]string, error) {
	var l list
	err := initramfs.Walk(bytes.NewReader(img), int64(len(img)), initramfs.Options{Decoders: Decoders()}, &l)
	return l, err
}

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The golden files are one small tree archived by GNU cpio and compressed
// by Debian's gzip, bzip2, xz, zstd and lz4 (testdata/README).
var compressed = []string{"gz", "bz2", "xz", "lzma", "zst", "lz4"}

func TestDecodersGolden(t *testing.T) {
	want, err := walk(golden(t, "gnu-newc.cpio"))
	if err != nil || len(want) != 9 {
		t.Fatalf("uncompressed golden: %v, %v", want, err)
	}
	early := golden(t, "gnu-newc.cpio") // a second archive after the member
	for _, ext := range compressed {
		img := golden(t, "gnu-newc.cpio."+ext)
		t.Run(ext, func(t *testing.T) {
			got, err := walk(img)
			if err != nil {
				t.Fatalf("Walk = %v", err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("entries (-want +got):\n%s", d)
			}
			// Concatenations Linux takes: the member, zero padding, another
			// archive; and the same member twice.
			followers := map[string][]byte{
				"padding and an archive": append(append(append([]byte{}, img...), make([]byte, 512+(4-len(img)%4)%4)...), early...),
				"twice":                  append(append([]byte{}, img...), img...),
			}
			for what, cat := range followers {
				if ext == "lz4" && what == "twice" {
					continue // the legacy format has no end: Linux reads the second magic as a block size
				}
				got, err := walk(cat)
				if err != nil {
					t.Errorf("%s: Walk = %v", what, err)
					continue
				}
				if d := cmp.Diff(append(append([]string{}, want...), want...), got); d != "" {
					t.Errorf("%s: entries (-want +got):\n%s", what, d)
				}
			}
		})
	}
}

func TestDecoderFaults(t *testing.T) {
	half := func(ext string) []byte {
		b := golden(t, "gnu-newc.cpio."+ext)
		return b[:len(b)/2]
	}
	flip := func(ext string) []byte {
		b := append([]byte{}, golden(t, "gnu-newc.cpio."+ext)...)
		for i := len(b) / 2; i < len(b)/2+16; i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	lzFollowed := append(append([]byte{}, golden(t, "gnu-newc.cpio.lz4")...), golden(t, "gnu-newc.cpio")...)
	for _, tc := range []struct {
		name string
		img  []byte
		err  string
	}{
		// The texts linux.uml 6.1 prints for the same images.
		{"truncated gzip", half("gz"), "read error"},
		{"truncated xz", half("xz"), "XZ-compressed data is corrupt"},
		{"corrupt xz", flip("xz"), "XZ-compressed data is corrupt"},
		{"xz with a CRC64 check", golden(t, "gnu-newc.cpio.crc64.xz"), "Input was encoded with settings that are not supported by this XZ decoder"},
		{"truncated zstd", half("zst"), "ZSTD-compressed data is truncated"},
		{"corrupt zstd", flip("zst"), "ZSTD-compressed data is corrupt"},
		{"truncated lzma", half("lzma"), "unexpected EOF"},
		{"corrupt lzma", flip("lzma"), "LZMA data is corrupt"},
		{"lz4 followed by an archive", lzFollowed, "Decoding failed"},
		{"lz4 frame format", golden(t, "gnu-newc.cpio.frame.lz4"), "invalid magic at start of compressed archive"},
		{"corrupt bzip2", flip("bz2"), ""}, // the garbage may reach the parser before the block CRC fails
		{"corrupt gzip", flip("gz"), ""},
	} {
		_, err := walk(tc.img)
		if tc.err == "" {
			if err == nil {
				t.Errorf("%s: Walk succeeded", tc.name)
			}
			continue
		}
		var e *initramfs.Error
		if !errors.As(err, &e) || e.Msg != tc.err {
			t.Errorf("%s: Walk = %v; want %q", tc.name, err, tc.err)
		}
	}
}

// The zstd frame splitter hands the decoder exactly one frame, whatever
// its header's optional fields.
func TestZstdFrameFollowed(t *testing.T) {
	img := golden(t, "gnu-newc.cpio.zst")
	src := append(append([]byte{}, img...), "trailing bytes"...)
	s := initramfs.Walk(bytes.NewReader(src), int64(len(src)), initramfs.Options{Decoders: map[initramfs.Method]initramfs.Decoder{initramfs.Zstd: zstdMember}}, &list{})
	if !errors.Is(s, initramfs.ErrInvalidMagic) {
		t.Errorf("zstd frame then junk: Walk = %v; want %v (the junk read as the next member)", s, initramfs.ErrInvalidMagic)
	}
}
