package porthelper

import (
	"bytes"
	"testing"
)

// FuzzDecodeMessage: decoding never panics, and a 4-byte message re-encodes
// to itself.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(EncodeMessage(4242))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		pid := DecodeMessage(b)
		if len(b) != MessageSize {
			if pid != -1 {
				t.Fatalf("DecodeMessage(%x) = %d; want -1", b, pid)
			}
			return
		}
		if got := EncodeMessage(pid); !bytes.Equal(got, b) {
			t.Fatalf("EncodeMessage(DecodeMessage(%x)) = %x", b, got)
		}
	})
}
