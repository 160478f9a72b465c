package loopdev

import (
	"bytes"
	"errors"
	"testing"
)

func TestCheckExtImage(t *testing.T) {
	ext := make([]byte, 4096)
	ext[extMagicOff], ext[extMagicOff+1] = 0x53, 0xef
	for _, tt := range []struct {
		name string
		img  []byte
		want error
	}{
		{"ext", ext, nil},
		{"zeros", make([]byte, 4096), ErrNotExt},
		{"short", make([]byte, 1000), ErrNotExt}, // /etc/shadow-sized
		{"empty", nil, ErrNotExt},
	} {
		if err := CheckExtImage(bytes.NewReader(tt.img)); !errors.Is(err, tt.want) {
			t.Errorf("CheckExtImage(%s) = %v; want %v", tt.name, err, tt.want)
		}
	}
}
