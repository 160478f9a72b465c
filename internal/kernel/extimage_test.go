package kernel

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
		{"zeros", make([]byte, 4096), errNotExt},
		{"short", make([]byte, 1000), errNotExt}, // /etc/shadow-sized
		{"empty", nil, errNotExt},
	} {
		if err := checkExtImage(bytes.NewReader(tt.img)); !errors.Is(err, tt.want) {
			t.Errorf("checkExtImage(%s) = %v; want %v", tt.name, err, tt.want)
		}
	}
	if got := oneLine("a\n\n  b \nc\n"); got != "a b c" {
		t.Errorf("oneLine = %q; want %q", got, "a b c")
	}
}
