package encap

import (
	"bytes"
	"errors"
	"testing"
)

var frame = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0xaa}

func TestGRE(t *testing.T) {
	tests := []struct {
		g    GRE
		want []byte // header for seq 7
	}{
		{GRE{}, []byte{0, 0, 0x65, 0x58}},
		{GRE{Key: true, KeyValue: 0x01020304}, []byte{0x20, 0, 0x65, 0x58, 1, 2, 3, 4}},
		{GRE{Sequence: true}, []byte{0x10, 0, 0x65, 0x58, 0, 0, 0, 7}},
		{GRE{Key: true, KeyValue: 9, Sequence: true, PinSequence: true}, []byte{0x30, 0, 0x65, 0x58, 0, 0, 0, 9, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		h := tt.g.Append(nil, 7)
		if !bytes.Equal(h, tt.want) || len(h) != tt.g.Len() {
			t.Errorf("%+v.Append = % x (Len %d); want % x", tt.g, h, tt.g.Len(), tt.want)
		}
		got, err := tt.g.Decode(append(h, frame...))
		if err != nil || !bytes.Equal(got, frame) {
			t.Errorf("%+v.Decode = % x, %v; want the frame", tt.g, got, err)
		}
	}
	rx := GRE{Key: true, KeyValue: 5}
	if _, err := rx.Decode((&GRE{Key: true, KeyValue: 6}).Append(nil, 0)); !errors.Is(err, ErrKey) {
		t.Errorf("wrong key: %v; want ErrKey", err)
	}
	if _, err := rx.Decode((&GRE{}).Append(nil, 0)); !errors.Is(err, ErrKey) {
		t.Errorf("missing key: %v; want ErrKey", err)
	}
	if _, err := (&GRE{}).Decode([]byte{0, 0, 0x08, 0x00}); !errors.Is(err, ErrProtocol) {
		t.Errorf("IPv4 payload: %v; want ErrProtocol", err)
	}
	if _, err := (&GRE{}).Decode([]byte{0, 1, 0x65, 0x58}); !errors.Is(err, ErrVersion) {
		t.Errorf("version 1: %v; want ErrVersion", err)
	}
	// A checksum from a peer is skipped.
	if got, err := (&GRE{}).Decode(append([]byte{0x80, 0, 0x65, 0x58, 0, 0, 0, 0}, frame...)); err != nil || !bytes.Equal(got, frame) {
		t.Errorf("checksummed packet: % x, %v", got, err)
	}
}

func TestL2TPv3(t *testing.T) {
	tests := []struct {
		l    L2TPv3
		want []byte
	}{
		{L2TPv3{Session: 0xabcd}, []byte{0, 0, 0xab, 0xcd}},
		{L2TPv3{UDP: true, Session: 1}, []byte{0, 3, 0, 0, 0, 0, 0, 1}},
		{L2TPv3{Session: 1, Cookie: true, CookieVal: 0x11223344}, []byte{0, 0, 0, 1, 0x11, 0x22, 0x33, 0x44}},
		{L2TPv3{Session: 1, Cookie: true, Cookie64: true, CookieVal: 0x0102030405060708, Counter: true},
			[]byte{0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7}},
	}
	for _, tt := range tests {
		h := tt.l.Append(nil, 7)
		if !bytes.Equal(h, tt.want) || len(h) != tt.l.Len() {
			t.Errorf("%+v.Append = % x (Len %d); want % x", tt.l, h, tt.l.Len(), tt.want)
		}
		got, err := tt.l.Decode(append(h, frame...))
		if err != nil || !bytes.Equal(got, frame) {
			t.Errorf("%+v.Decode = % x, %v", tt.l, got, err)
		}
	}
	rx := L2TPv3{Session: 2, Cookie: true, CookieVal: 3}
	if _, err := rx.Decode((&L2TPv3{Session: 1, Cookie: true, CookieVal: 3}).Append(nil, 0)); !errors.Is(err, ErrKey) {
		t.Errorf("wrong session: %v", err)
	}
	if _, err := rx.Decode((&L2TPv3{Session: 2, Cookie: true, CookieVal: 4}).Append(nil, 0)); !errors.Is(err, ErrCookie) {
		t.Errorf("wrong cookie: %v", err)
	}
	if _, err := rx.Decode([]byte{0, 0}); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
}

func TestStripIPv4(t *testing.T) {
	p := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}, 0xaa)
	if got, err := StripIPv4(p); err != nil || !bytes.Equal(got, []byte{0xaa}) {
		t.Errorf("StripIPv4 = % x, %v", got, err)
	}
	if _, err := StripIPv4([]byte{0x46, 0}); err == nil {
		t.Error("short header accepted")
	}
}

// FuzzDecode: decoding never panics and a decoded payload lies inside the
// packet; re-encoding with the same header round-trips.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x30, 0, 0x65, 0x58, 0, 0, 0, 9, 0, 0, 0, 1, 0xaa}, uint8(3), uint32(9))
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0, 1, 0xbb}, uint8(0x11), uint32(1))
	f.Fuzz(func(t *testing.T, p []byte, mode uint8, key uint32) {
		g := GRE{Key: mode&1 != 0, KeyValue: key, Sequence: mode&2 != 0}
		if got, err := g.Decode(p); err == nil {
			if len(got) > len(p) {
				t.Fatal("payload longer than the packet")
			}
			again, err := g.Decode(g.Append(nil, 1))
			if err != nil || len(again) != 0 {
				t.Fatalf("GRE round trip: %v", err)
			}
		}
		l := L2TPv3{UDP: mode&0x10 != 0, Session: key, Cookie: mode&4 != 0, Cookie64: mode&8 != 0, CookieVal: uint64(key) << 3, Counter: mode&0x20 != 0}
		if !l.Cookie64 {
			l.CookieVal &= 0xffffffff // a 32-bit cookie's value fits 32 bits (the parser checks)
		}
		if got, err := l.Decode(p); err == nil {
			if len(got) > len(p) {
				t.Fatal("payload longer than the packet")
			}
		}
		back, err := l.Decode(l.Append(nil, 5))
		if err != nil || len(back) != 0 {
			t.Fatalf("L2TPv3 round trip: %v", err)
		}
		StripIPv4(p)
	})
}
