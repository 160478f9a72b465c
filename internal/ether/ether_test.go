package ether

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in   string
		want MAC
		err  bool
	}{
		{"fe:fd:0a:4d:00:01", MAC{0xfe, 0xfd, 0x0a, 0x4d, 0, 1}, false},
		{"FF:ff:Ff:fF:ff:ff", Broadcast, false},
		{"0:1:2:3:4:5", MAC{0, 1, 2, 3, 4, 5}, false},
		{"00:00:00:00:00:00", MAC{}, false},
		{"", MAC{}, true},
		{"fe:fd:0a:4d:00", MAC{}, true},
		{"fe:fd:0a:4d:00:01:02", MAC{}, true},
		{"fe:fd:0a:4d:00:001", MAC{}, true},
		{"fe-fd-0a-4d-00-01", MAC{}, true},
		{"fe:fd:0a:4d::01", MAC{}, true},
		{"fe:fd:0a:4d:00:0g", MAC{}, true},
		{"fe:fd:0a:4d:00:01 ", MAC{}, true},
	}
	for _, tt := range tests {
		got, err := ParseMAC(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrBadMAC) {
			t.Errorf("ParseMAC(%q) error %v is not ErrBadMAC", tt.in, err)
		}
	}
}

func TestStringAndClasses(t *testing.T) {
	m := MAC{0xfe, 0xfd, 0x0a, 0x4d, 0x00, 0x01}
	if got := m.String(); got != "fe:fd:0a:4d:00:01" {
		t.Errorf("String() = %q; want fe:fd:0a:4d:00:01", got)
	}
	if m.IsMulticast() || m.IsBroadcast() || m.IsZero() || !m.IsLocal() || !m.IsValidUnicast() {
		t.Errorf("class tests wrong for %v", m)
	}
	if !Broadcast.IsMulticast() || !Broadcast.IsBroadcast() || Broadcast.IsValidUnicast() {
		t.Errorf("class tests wrong for broadcast")
	}
	mc := MAC{0x01, 0x00, 0x5e, 0, 0, 1}
	if !mc.IsMulticast() || mc.IsBroadcast() || mc.IsLocal() {
		t.Errorf("class tests wrong for %v", mc)
	}
	if (MAC{}).IsValidUnicast() || !(MAC{}).IsZero() {
		t.Errorf("class tests wrong for zero MAC")
	}
	var back MAC
	txt, _ := m.MarshalText()
	if err := back.UnmarshalText(txt); err != nil || back != m {
		t.Errorf("UnmarshalText(MarshalText(%v)) = %v, %v", m, back, err)
	}
}

func TestFromIPv4(t *testing.T) {
	got, ok := FromIPv4(netip.MustParseAddr("10.77.0.1"))
	if want := (MAC{0xfe, 0xfd, 10, 77, 0, 1}); !ok || got != want {
		t.Errorf("FromIPv4(10.77.0.1) = %v, %v; want %v, true", got, ok, want)
	}
	if got, ok := FromIPv4(netip.MustParseAddr("::ffff:192.168.0.254")); !ok || got.String() != "fe:fd:c0:a8:00:fe" {
		t.Errorf("FromIPv4(mapped) = %v, %v", got, ok)
	}
	if _, ok := FromIPv4(netip.MustParseAddr("fe80::1")); ok {
		t.Errorf("FromIPv4(fe80::1) ok; want false")
	}
}

func TestHeader(t *testing.T) {
	f := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06, 0xaa}
	d, err := Dst(f)
	if err != nil || d != (MAC{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Dst = %v, %v", d, err)
	}
	s, err := Src(f)
	if err != nil || s != (MAC{7, 8, 9, 10, 11, 12}) {
		t.Errorf("Src = %v, %v", s, err)
	}
	if et, err := EtherType(f); err != nil || et != 0x0806 {
		t.Errorf("EtherType = %#x, %v; want 0x806", et, err)
	}
	for _, fn := range []func([]byte) (MAC, error){Dst, Src} {
		if _, err := fn(f[:13]); !errors.Is(err, ErrShortFrame) {
			t.Errorf("short frame: err = %v; want ErrShortFrame", err)
		}
	}
	if _, err := EtherType(f[:13]); !errors.Is(err, ErrShortFrame) {
		t.Errorf("EtherType(short) err = %v", err)
	}
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"fe:fd:0a:4d:00:01", "0:1:2:3:4:5", "FF:FF:FF:FF:FF:FF", "", "::::::", "a:b:c:d:e:f:", "1:2:3:4:5:123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		// Round trip: the canonical text parses back to the same address.
		back, err := ParseMAC(m.String())
		if err != nil || back != m {
			t.Fatalf("ParseMAC(%q) = %v; reparse of %q = %v, %v", s, m, m.String(), back, err)
		}
	})
}
