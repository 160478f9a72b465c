package vxlan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var tests = []struct {
	name string
	raw  []byte
	want Header
	err  error
}{
	{"vni 42", []byte{0x08, 0, 0, 0, 0, 0, 42, 0}, Header{VNI: 42, Flags: FlagI}, nil},
	{"max vni", []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}, Header{VNI: MaxVNI, Flags: FlagI}, nil},
	{"vni 0", []byte{0x08, 0, 0, 0, 0, 0, 0, 0}, Header{Flags: FlagI}, nil},
	// Reserved bits are ignored on receipt (RFC 7348 §5).
	{"reserved set", []byte{0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0xff}, Header{VNI: 0x010203, Flags: 0xff}, nil},
	{"no I flag", []byte{0xf7, 0, 0, 0, 0, 0, 42, 0}, Header{}, ErrNoVNI},
	{"short", []byte{0x08, 0, 0, 0, 0, 0, 42}, Header{}, ErrShort},
	{"empty", nil, Header{}, ErrShort},
}

func TestUnmarshal(t *testing.T) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			err := h.UnmarshalBinary(tt.raw)
			if !errors.Is(err, tt.err) {
				t.Fatalf("UnmarshalBinary(% x) = %v; want %v", tt.raw, err, tt.err)
			}
			if err == nil && h != tt.want {
				t.Errorf("UnmarshalBinary(% x) = %+v; want %+v", tt.raw, h, tt.want)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	for _, tt := range []struct {
		vni  uint32
		want []byte
	}{
		{0, []byte{8, 0, 0, 0, 0, 0, 0, 0}},
		{42, []byte{8, 0, 0, 0, 0, 0, 42, 0}},
		{0x123456, []byte{8, 0, 0, 0, 0x12, 0x34, 0x56, 0}},
		{MaxVNI, []byte{8, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
	} {
		// Flags other than I are never sent, whatever Flags holds.
		got, err := Header{VNI: tt.vni, Flags: 0xff}.MarshalBinary()
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("MarshalBinary(vni %d) = % x, %v; want % x", tt.vni, got, err, tt.want)
		}
	}
	if _, err := (Header{VNI: MaxVNI + 1}).MarshalBinary(); !errors.Is(err, ErrVNI) {
		t.Errorf("MarshalBinary(vni 2^24) = %v; want ErrVNI", err)
	}
}

func TestDecode(t *testing.T) {
	frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06}
	p, _ := Header{VNI: 7}.AppendBinary(nil)
	h, got, err := Decode(append(p, frame...))
	if err != nil || h.VNI != 7 || !bytes.Equal(got, frame) {
		t.Errorf("Decode = %+v, % x, %v; want vni 7 and the frame", h, got, err)
	}
}

func TestParseVNI(t *testing.T) {
	for in, want := range map[string]uint32{"0": 0, "42": 42, "16777215": MaxVNI} {
		if got, err := ParseVNI(in); err != nil || got != want {
			t.Errorf("ParseVNI(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "16777216", "0x10", "1e3", " 1"} {
		if _, err := ParseVNI(in); !errors.Is(err, ErrVNI) {
			t.Errorf("ParseVNI(%q) = %v; want ErrVNI", in, err)
		}
	}
}

// TestGolden: datagrams captured from Linux's vxlan device (ip link add
// ... type vxlan id 42) and from VDE's vxvde plug (vde_plug
// vxvde://239.1.2.3/vni=42): they decode to VNI 42 and re-encoding the
// header reproduces theirs byte for byte.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bin")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h, frame, err := Decode(raw)
		if err != nil || h.VNI != 42 || len(frame) < 14 {
			t.Errorf("%s: Decode = %+v, %d-byte frame, %v; want VNI 42 and a frame", f, h, len(frame), err)
			continue
		}
		again, _ := h.AppendBinary(nil)
		if !bytes.Equal(again, raw[:HeaderLen]) {
			t.Errorf("%s: re-encoded header % x; want % x", f, again, raw[:HeaderLen])
		}
	}
}

// FuzzHeader: decoding never panics; a decoded header re-encodes to one
// that decodes to the same VNI with only the I flag; decode→encode→decode
// is stable.
func FuzzHeader(f *testing.F) {
	for _, tt := range tests {
		f.Add(tt.raw)
	}
	files, _ := filepath.Glob("testdata/*.bin")
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		h, frame, err := Decode(p)
		if err != nil {
			return
		}
		if h.Flags&FlagI == 0 || h.VNI > MaxVNI || len(frame) != len(p)-HeaderLen {
			t.Fatalf("Decode(% x) = %+v with a %d-byte frame", p, h, len(frame))
		}
		enc, err := h.AppendBinary(nil)
		if err != nil || len(enc) != HeaderLen {
			t.Fatalf("AppendBinary(%+v) = % x, %v", h, enc, err)
		}
		h2, _, err := Decode(enc)
		if err != nil || h2.VNI != h.VNI || h2.Flags != FlagI {
			t.Fatalf("round trip: %+v -> % x -> %+v, %v", h, enc, h2, err)
		}
		enc2, _ := h2.AppendBinary(nil)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encode not stable: % x then % x", enc, enc2)
		}
	})
}
