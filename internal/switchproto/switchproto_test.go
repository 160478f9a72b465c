package switchproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustNamed(t testing.TB, p string) Sockaddr {
	a, err := NamedSockaddr(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func v3raw(typ uint32, addr Sockaddr, tail []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, Magic)
	b = binary.LittleEndian.AppendUint32(b, 3)
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, addr[:]...)
	return append(b, tail...)
}

func TestUnmarshal(t *testing.T) {
	named := mustNamed(t, "/tmp/x/port")
	sw := SwitchSockaddr(4242, 99)
	v1 := binary.LittleEndian.AppendUint32(nil, Magic)
	v1 = binary.LittleEndian.AppendUint32(v1, 0)
	v1 = append(v1, 0xfe, 0xfd, 1, 2, 3, 4)
	v1 = append(v1, named[:]...)
	v0 := binary.LittleEndian.AppendUint32(nil, 0)
	v0 = append(v0, 0xfe, 0xfd, 1, 2, 3, 5)
	v0 = append(v0, named[:]...)
	v2 := v3raw(0, sw, []byte{0, 0})
	v2[4] = 2
	v9 := v3raw(0, sw, []byte{0, 0})
	v9[4] = 9

	tests := []struct {
		name string
		raw  []byte
		want Request
		err  error
	}{
		{"v3 UML", v3raw(0, sw, []byte{0, 0}), Request{Version: 3, Addr: sw, Tail: []byte{0, 0}}, nil},
		{"v3 no tail", v3raw(0, sw, nil), Request{Version: 3, Addr: sw}, nil},
		{"v3 vde description", v3raw(0, named, []byte("my port\x00junk")), Request{Version: 3, Addr: named, Tail: []byte("my port\x00junk")}, nil},
		{"v3 type 1", v3raw(1, sw, []byte{0, 0}), Request{Version: 3, Type: 1, Addr: sw, Tail: []byte{0, 0}}, nil},
		{"v3 short", v3raw(0, sw, nil)[:121], Request{}, ErrShortRequest},
		{"v1", v1, Request{Version: 1, MAC: [6]byte{0xfe, 0xfd, 1, 2, 3, 4}, Addr: named}, nil},
		{"v1 short", v1[:123], Request{}, ErrShortRequest},
		{"v0", v0, Request{Version: 0, MAC: [6]byte{0xfe, 0xfd, 1, 2, 3, 5}, Addr: named}, nil},
		{"v0 short", v0[:119], Request{}, ErrShortRequest},
		{"v2", v2, Request{}, &VersionError{2}},
		{"v9", v9, Request{}, &VersionError{9}},
		{"empty", nil, Request{}, ErrShortRequest},
		{"magic only", v1[:4], Request{}, ErrShortRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.UnmarshalBinary(tt.raw)
			if tt.err != nil {
				var ve *VersionError
				if errors.As(tt.err, &ve) {
					var got *VersionError
					if !errors.As(err, &got) || got.Version != ve.Version {
						t.Fatalf("UnmarshalBinary = %v; want %v", err, tt.err)
					}
					return
				}
				if !errors.Is(err, tt.err) {
					t.Fatalf("UnmarshalBinary = %v; want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalBinary = %v", err)
			}
			if d := cmp.Diff(tt.want, r); d != "" {
				t.Errorf("UnmarshalBinary mismatch (-want +got):\n%s", d)
			}
			enc, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			want := tt.raw
			if r.Version == 3 && r.Tail == nil {
				want = append(want[:len(want):len(want)], 0, 0) // UML's padding
			}
			if !bytes.Equal(enc, want) {
				t.Errorf("MarshalBinary = %x; want %x", enc, want)
			}
		})
	}
}

func TestDescription(t *testing.T) {
	for _, tt := range []struct {
		tail []byte
		want string
	}{{nil, ""}, {[]byte{0, 0}, ""}, {[]byte("abc\x00def"), "abc"}, {[]byte("abc"), "abc"}} {
		r := Request{Version: 3, Tail: tt.tail}
		if got := r.Description(); got != tt.want {
			t.Errorf("Description(tail %q) = %q; want %q", tt.tail, got, tt.want)
		}
	}
}

// TestGolden decodes requests captured from the real clients: linux.uml 6.1
// (eth0=daemon,...) and vde_plug 2.3.2 (--descr "my port").
func TestGolden(t *testing.T) {
	for _, tt := range []struct {
		file  string
		descr string
		path  string
	}{
		{"uml61-eth0-v3.bin", "", ""},
		{"uml61-eth1-v3.bin", "", ""},
		{"vde_plug-v3.bin", "my port user=root pid=27019", "/tmp/cap/vd/.27019-00000"},
	} {
		raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		var r Request
		if err := r.UnmarshalBinary(raw); err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if r.Version != 3 || r.Type != TypeNewControl || r.Addr.Family() != AFUnix {
			t.Errorf("%s: version %d type %d family %d; want 3, 0, 1", tt.file, r.Version, r.Type, r.Addr.Family())
		}
		if got := r.Description(); got != tt.descr {
			t.Errorf("%s: Description() = %q; want %q", tt.file, got, tt.descr)
		}
		if tt.path == "" {
			if !r.Addr.IsAbstract() || r.Addr.Path() != "" {
				t.Errorf("%s: UML data address %q is not abstract", tt.file, r.Addr.String())
			}
		} else if got := r.Addr.Path(); got != tt.path {
			t.Errorf("%s: Path() = %q; want %q", tt.file, got, tt.path)
		}
		enc, _ := r.MarshalBinary()
		if !bytes.Equal(enc, raw) {
			t.Errorf("%s: re-encoding differs:\n got %x\nwant %x", tt.file, enc, raw)
		}
	}
}

func TestSockaddr(t *testing.T) {
	sw := SwitchSockaddr(0x01020304, 0x0a0b0c0d)
	want := make([]byte, SockaddrSize)
	want[0] = 1
	copy(want[6:], []byte{4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a})
	if !bytes.Equal(sw[:], want) {
		t.Errorf("SwitchSockaddr = %x; want %x", sw[:], want)
	}
	if !sw.IsAbstract() || sw.String() != `@\x00\x00\x00\x04\x03\x02\x01\r\f\v\n` {
		t.Errorf("SwitchSockaddr String() = %s", sw.String())
	}
	n := mustNamed(t, "/tmp/uml.ctl")
	if n.IsAbstract() || n.Path() != "/tmp/uml.ctl" || n.String() != "/tmp/uml.ctl" || n.Family() != AFUnix {
		t.Errorf("NamedSockaddr: %v %q", n.IsAbstract(), n.Path())
	}
	for _, bad := range []string{"", "a\x00b", string(make([]byte, 109))} {
		if _, err := NamedSockaddr(bad); !errors.Is(err, ErrBadPath) {
			t.Errorf("NamedSockaddr(%q) err = %v; want ErrBadPath", bad, err)
		}
	}
	if _, err := NamedSockaddr(string(bytes.Repeat([]byte{'a'}, 108))); err != nil {
		t.Errorf("NamedSockaddr(108 bytes) = %v", err)
	}
	a, err := AbstractSockaddr([]byte("sw"))
	if err != nil || a.String() != "@sw" || a[3] != 's' {
		t.Errorf("AbstractSockaddr = %v %v", a.String(), err)
	}
	if _, err := AbstractSockaddr(make([]byte, 108)); !errors.Is(err, ErrBadPath) {
		t.Errorf("AbstractSockaddr(108) err = %v", err)
	}
}

func TestCanonical(t *testing.T) {
	n := mustNamed(t, "/tmp/p")
	dirty := n
	copy(dirty[2+len("/tmp/p")+1:], "garbage")
	if Canonical(dirty[:]) != n {
		t.Errorf("Canonical did not clear bytes after a named path's NUL")
	}
	if Canonical(n[:2+len("/tmp/p")]) != n {
		t.Errorf("Canonical(short named) != full named")
	}
	ab, _ := AbstractSockaddr([]byte("x\x00y"))
	if Canonical(ab[:]) != ab {
		t.Errorf("Canonical changed an abstract address")
	}
	if Canonical(ab[:6]) != ab {
		t.Errorf("Canonical(abstract, len 6) != zero-padded")
	}
}

func TestReply(t *testing.T) {
	sw := SwitchSockaddr(1, 2)
	got, err := ParseReply(sw[:])
	if err != nil || got != sw {
		t.Errorf("ParseReply = %v, %v", got, err)
	}
	for _, n := range []int{0, 109, 111} {
		if _, err := ParseReply(make([]byte, n)); !errors.Is(err, ErrShortReply) {
			t.Errorf("ParseReply(%d bytes) err = %v; want ErrShortReply", n, err)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	if _, err := (&Request{Version: 2}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary(version 2) succeeded")
	}
	if _, err := (&Request{Version: 3, Tail: make([]byte, MaxTail+1)}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary(long tail) succeeded")
	}
}

// FuzzRequest: decoding never panics; decode→encode→decode is stable; an
// encoding of a decoded request is never longer than the input's kept part.
func FuzzRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bin")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	sw := SwitchSockaddr(1, 2)
	f.Add(v3raw(0, sw, []byte{0, 0}))
	f.Add(v3raw(0, sw, nil)[:100])
	f.Add([]byte{0xce, 0xfa, 0xed, 0xfe, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v): %v", r, err)
		}
		if len(enc) > MaxRequestSize {
			t.Fatalf("encoding of %d bytes exceeds MaxRequestSize", len(enc))
		}
		var r2 Request
		if err := r2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if r.Version == 3 && r.Tail == nil {
			r.Tail = []byte{0, 0} // encoder supplies UML's padding
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Fatalf("decode→encode→decode differs:\n%s", d)
		}
	})
}

func TestVnetMark(t *testing.T) {
	a := SwitchSockaddr(1234, 5678)
	if a.HasVnet() {
		t.Fatal("a plain switch address is marked")
	}
	a.SetVnet()
	if !a.HasVnet() {
		t.Fatal("SetVnet did not mark the address")
	}
	if a.Family() != AFUnix || !a.IsAbstract() || binary.LittleEndian.Uint32(a[6:]) != 1234 || binary.LittleEndian.Uint32(a[10:]) != 5678 {
		t.Errorf("SetVnet changed the blob: % x", a[:14])
	}
	// UML's random tail: one byte off is no mark.
	a[offVnetMagic+3] ^= 1
	if a.HasVnet() {
		t.Error("a damaged mark is accepted")
	}
	n, err := NamedSockaddr("/tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	copy(n[offVnetMagic:], vnetMagic[:])
	if n.HasVnet() {
		t.Error("a named address is marked")
	}
}
