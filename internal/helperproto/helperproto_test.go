package helperproto

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseArgv(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		args []string
		want Request
		err  *ArgvError
	}{
		{[]string{}, Request{}, &ArgvError{Stderr, BadArgList, 1}},
		{[]string{"4"}, Request{}, &ArgvError{Stderr, BadArgList, 1}},
		{[]string{"5", "tuntap", "up"}, Request{}, &ArgvError{Stderr, "Version mismatch - requested version 5, uml_net supports up to version 4\n", 1}},
		{[]string{"-1", "add", "a", "b", "c"}, Request{}, &ArgvError{Stderr, "Version mismatch - requested version -1, uml_net supports up to version 4\n", 1}},
		{[]string{"4", "foo", "x"}, Request{}, &ArgvError{Stdout, "Unknown transport : 'foo'\n", 1}},
		{[]string{"x", "y", "z"}, Request{}, &ArgvError{Stdout, "Unknown transport : 'x'\n", 1}},
		{[]string{"tuntap", "up", "1.2.3.4"}, Request{}, &ArgvError{Stdout, "No version #0 handler for 'tuntap'\n", 1}},
		{[]string{"3", "add", "tap0", "1.2.3.4", "255.0.0.0"}, Request{}, &ArgvError{Stdout, "No version #3 handler for 'add'\n", 1}},
		{[]string{"4", "tuntap"}, Request{}, &ArgvError{LengthPrefixed, TuntapTooFew, 1}},
		{[]string{"4", "tuntap", "foo"}, Request{}, &ArgvError{Stderr, "Bad tuntap op : 'foo'\n", 1}},
		{[]string{"4", "tuntap", "add"}, Request{}, &ArgvError{LengthPrefixed, ChangeAddrTooFew, 0}},
		{[]string{"4", "tuntap", "up"}, Request{}, &ArgvError{TuntapDatagram, TuntapUpTooFew, 0}},
		{[]string{"4", "tuntap", "up", "bogus"}, Request{}, &ArgvError{TuntapDatagram, "Invalid gateway address 'bogus'\n", 0}},
		{[]string{"4", "tuntap", "up", "10.0.1.1"}, Request{Version: 4, Transport: "tuntap", Op: "up", Gate: a("10.0.1.1")}, nil},
		{[]string{"0x4", "tuntap", "up", "10.0.1.1", "extra"}, Request{Version: 4, Transport: "tuntap", Op: "up", Gate: a("10.0.1.1")}, nil},
		{[]string{"4", "add", "tap2", "10.0.1.2", "255.0.0.0"}, Request{Version: 4, Transport: "add", Op: "add", Dev: "tap2", Addr: a("10.0.1.2"), Mask: a("255.0.0.0")}, nil},
		{[]string{"4", "tuntap", "del", "tap2", "10.0.1.2", "255.255.255.0"}, Request{Version: 4, Transport: "tuntap", Op: "del", Dev: "tap2", Addr: a("10.0.1.2"), Mask: a("255.255.255.0")}, nil},
		{[]string{"4", "add", "ta-p", "1.2.3.4", "255.0.0.0"}, Request{}, &ArgvError{LengthPrefixed, NotAlphanumeric, 0}},
		{[]string{"4", "add", "tap0", "1.2.3.4;reboot", "255.0.0.0"}, Request{}, &ArgvError{LengthPrefixed, "Invalid address '1.2.3.4;reboot'\n", 1}},
		{[]string{"4", "add", "tap0", "1.2.3.4", "255.0.255.0"}, Request{}, &ArgvError{LengthPrefixed, "Invalid netmask '255.0.255.0'\n", 1}},
		{[]string{"4", "add", "tap0", "1.2.3.4"}, Request{}, &ArgvError{LengthPrefixed, "uml_net : too few arguments to add\n", 1}},
		{[]string{"4", "ethertap"}, Request{}, &ArgvError{EthertapStatus, EthertapTooFew, 1}},
		{[]string{"4", "ethertap", "tapx", "3"}, Request{}, &ArgvError{EthertapStatus, "failed to get unit number from '/dev/tapx'\n", 1}},
		{[]string{"4", "ethertap", "tap0", "3", "10.1.1.1"}, Request{Version: 4, Transport: "ethertap", Dev: "tap0", DataFD: 3, Gate: a("10.1.1.1")}, nil},
		{[]string{"4", "slip"}, Request{}, &ArgvError{LengthPrefixed, SlipTooFew, 1}},
		{[]string{"4", "slip", "foo", "bar"}, Request{}, &ArgvError{Stdout, "slip - Unknown op 'foo'\n", 1}},
		{[]string{"4", "slip", "up", "10.1.1.1"}, Request{Version: 4, Transport: "slip", Op: "up", Gate: a("10.1.1.1")}, nil},
		{[]string{"4", "slip", "down", "sl0"}, Request{Version: 4, Transport: "slip", Op: "down", Dev: "sl0"}, nil},
	}
	for _, tt := range tests {
		got, err := ParseArgv(tt.args)
		if tt.err != nil {
			var ae *ArgvError
			if !errors.As(err, &ae) || *ae != *tt.err {
				t.Errorf("ParseArgv(%q) error = %#v; want %#v", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseArgv(%q) = %v", tt.args, err)
			continue
		}
		if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("ParseArgv(%q) mismatch (-want +got):\n%s", tt.args, d)
		}
	}
}

func TestValidation(t *testing.T) {
	for _, s := range []string{"10.0.0.1", "192.168.1.254", "1.2.3.4"} {
		if _, err := ParseAddr(s); err != nil {
			t.Errorf("ParseAddr(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "bogus", "010.0.0.1", "1.2.3", "::1", "0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "1.2.3.4 ", "-1.2.3.4", "1.2.3.4/24"} {
		if _, err := ParseAddr(s); !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddr(%q) = %v; want ErrBadAddr", s, err)
		}
	}
	for s, bits := range map[string]int{"255.255.255.255": 32, "255.0.0.0": 8, "0.0.0.0": 0, "255.255.255.128": 25} {
		m, err := ParseMask(s)
		if err != nil || MaskBits(m) != bits {
			t.Errorf("ParseMask(%q) = %v, %d bits; want %d", s, err, MaskBits(m), bits)
		}
	}
	for _, s := range []string{"255.0.255.0", "0.255.255.255", "255.255.255.254x", "1.0.0.0"} {
		if _, err := ParseMask(s); !errors.Is(err, ErrBadMask) {
			t.Errorf("ParseMask(%q) = %v; want ErrBadMask", s, err)
		}
	}
	for _, s := range []string{"tap0", "eth0", "A1", "a23456789012345"} {
		if CheckIfName(s) != nil {
			t.Errorf("CheckIfName(%q) != nil", s)
		}
	}
	for _, s := range []string{"", "ta-p", "a/b", "../x", "a234567890123456", "tap0\n"} {
		if CheckIfName(s) == nil {
			t.Errorf("CheckIfName(%q) == nil", s)
		}
	}
	if n, err := EthertapUnit("tap12"); n != 12 || err != nil {
		t.Errorf("EthertapUnit(tap12) = %d, %v", n, err)
	}
}

func TestCommandLine(t *testing.T) {
	if got, want := CommandLine("route", "add", "-host", "10.0.1.2", "dev", "tap2"), "* route add -host 10.0.1.2 dev tap2\n"; got != want {
		t.Errorf("CommandLine = %q; want %q", got, want)
	}
}

// TestGoldenReplies decodes replies captured from Debian's uml_net and
// re-encodes them byte for byte.
func TestGoldenReplies(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	up := read("real-tuntap-up.bin")
	var r TuntapReply
	if err := r.UnmarshalBinary(up); err != nil {
		t.Fatal(err)
	}
	if r.Name != "tap0" || !strings.Contains(r.Text, CommandLine("ifconfig", "tap0", "10.0.1.1", "netmask", HostRouteMask, "up")) {
		t.Errorf("real tuntap reply = %+v", r)
	}
	if again, _ := r.MarshalBinary(); !bytes.Equal(again, up) {
		t.Errorf("re-encoded tuntap reply differs:\n%q\n%q", again, up)
	}
	fail := read("real-tuntap-up-fail.bin")
	if got := FailedTuntapText(fail); got != TuntapUpTooFew {
		t.Errorf("failed reply text = %q", got)
	}
	if again, _ := (TuntapReply{Text: TuntapUpTooFew}).MarshalBinary(); !bytes.Equal(again, fail) {
		t.Errorf("failed reply = %q; want %q", again, fail)
	}
	for name, want := range map[string]string{"real-add-badname.bin": NotAlphanumeric, "real-tuntap-toofew.bin": TuntapTooFew} {
		b := read(name)
		text, n, err := ParseLengthPrefixed(b)
		if err != nil || text != want || n != len(b) {
			t.Errorf("%s: ParseLengthPrefixed = %q, %d, %v; want %q, %d", name, text, n, err, want, len(b))
		}
		if again := AppendLengthPrefixed(nil, text); !bytes.Equal(again, b) {
			t.Errorf("%s: re-encoded %q; want %q", name, again, b)
		}
	}
	add := read("real-add-nodev.bin")
	text, _, err := ParseLengthPrefixed(add)
	if err != nil || !strings.HasPrefix(text, CommandLine("route", "add", "-host", "10.0.1.2", "dev", "tap9")) {
		t.Errorf("real add reply = %q, %v", text, err)
	}
	eth := read("real-ethertap-toofew.bin")
	if eth[0] != EthertapStatusFail {
		t.Errorf("ethertap status = %d", eth[0])
	}
	if text, _, err := ParseLengthPrefixed(eth[1:]); err != nil || text != EthertapTooFew {
		t.Errorf("ethertap reply = %q, %v", text, err)
	}
	if got := AppendLengthPrefixed(nil, ""); !bytes.Equal(got, []byte{0, 0, 0, 0}) {
		t.Errorf("empty reply = %x", got)
	}
}

func TestEthertapRequest(t *testing.T) {
	r := EthertapRequest{What: EthertapDel, Addr: [4]byte{10, 0, 0, 2}, Mask: [4]byte{255, 255, 255, 0}}
	b, _ := r.MarshalBinary()
	var got EthertapRequest
	if err := got.UnmarshalBinary(b); err != nil || got != r || len(b) != EthertapReqSize {
		t.Errorf("round trip = %+v, %v", got, err)
	}
	if err := got.UnmarshalBinary(b[:11]); !errors.Is(err, ErrShortReply) {
		t.Errorf("short request = %v", err)
	}
}

func FuzzParseArgv(f *testing.F) {
	f.Add("4\x00tuntap\x00up\x0010.0.1.1")
	f.Add("4\x00add\x00tap2\x0010.0.1.2\x00255.0.0.0")
	f.Add("0x4\x00ethertap\x00tap0\x003")
	f.Add("4\x00slip\x00down\x00sl0")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		r, err := ParseArgv(args)
		if err != nil {
			var ae *ArgvError
			if !errors.As(err, &ae) || ae.Text == "" || !strings.HasSuffix(ae.Text, "\n") {
				t.Fatalf("ParseArgv(%q) = %#v: want an *ArgvError with a line of text", args, err)
			}
			return
		}
		if r.Version != Version {
			t.Fatalf("accepted version %d", r.Version)
		}
		for _, a := range []netip.Addr{r.Gate, r.Addr} {
			if a.IsValid() && !a.Is4() {
				t.Fatalf("accepted non-IPv4 %v", a)
			}
		}
		if r.Dev != "" && CheckIfName(r.Dev) != nil {
			t.Fatalf("accepted device %q", r.Dev)
		}
	})
}

func FuzzLengthPrefixed(f *testing.F) {
	for _, name := range []string{"real-add-nodev.bin", "real-add-badname.bin", "real-tuntap-toofew.bin"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		text, n, err := ParseLengthPrefixed(b)
		if err != nil {
			return
		}
		if n > len(b) || n < LenPrefixSize {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		again := AppendLengthPrefixed(nil, text)
		text2, _, err := ParseLengthPrefixed(again)
		if err != nil || text2 != text {
			t.Fatalf("round trip %q -> %q, %v", text, text2, err)
		}
	})
}

func FuzzTuntapReply(f *testing.F) {
	for _, name := range []string{"real-tuntap-up.bin", "real-tuntap-up-fail.bin"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r TuntapReply
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		if r.Name == "" {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			if len(r.Name) >= IfNameSize {
				return
			}
			t.Fatal(err)
		}
		var r2 TuntapReply
		if err := r2.UnmarshalBinary(enc); err != nil || r2 != r {
			t.Fatalf("round trip %+v -> %+v, %v", r, r2, err)
		}
	})
}
