package unpack

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/umlkit/umlkit/internal/initramfs"
)

// discard is a Sink for the fuzzer: it reads a little of every file.
type discard struct{}

func (discard) Entry(e *initramfs.Entry, data io.Reader) error {
	if data != nil {
		_, err := io.Copy(io.Discard, io.LimitReader(data, 1<<16))
		return err
	}
	return nil
}

func (discard) EndArchive() error { return nil }

// FuzzDecoders: the decoders (and the zstd frame and lz4 block framing in
// front of them) never panic or loop, read no further than their member,
// and fail with an *initramfs.Error (the kernel's texts).
func FuzzDecoders(f *testing.F) {
	maxDict = 4 << 20
	plain := golden(f, "gnu-newc.cpio")
	for _, ext := range append(compressed, "crc64.xz", "frame.lz4") {
		b := golden(f, "gnu-newc.cpio."+ext)
		f.Add(b)
		f.Add(append(append(append([]byte{}, b...), make([]byte, 4-len(b)%4)...), plain...))
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		err := initramfs.Walk(bytes.NewReader(img), int64(len(img)), initramfs.Options{Decoders: Decoders()}, discard{})
		var e *initramfs.Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Walk = %T %v; want an *initramfs.Error", err, err)
		}
	})
}
