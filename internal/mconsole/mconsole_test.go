package mconsole

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func hexb(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestGolden(t *testing.T) {
	// Captured from /usr/bin/uml_mconsole SOCK version.
	golden, err := os.ReadFile("testdata/request-version.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewRequest("version").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("NewRequest(version).MarshalBinary() differs from uml_mconsole's datagram:\n got %x\nwant %x", got[:24], golden[:24])
	}
	var r Request
	if err := r.UnmarshalBinary(golden); err != nil {
		t.Fatal(err)
	}
	if r != (Request{Version: 2, Text: "version"}) {
		t.Errorf("UnmarshalBinary(golden) = %+v", r)
	}
}

var requestTests = []struct {
	name string
	raw  []byte
	want Request
	err  error
}{
	{"short datagram", []byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x04\x00\x00\x00help"), Request{2, "help"}, nil},
	{"version 1", []byte("\xbe\xba\xfe\xca\x01\x00\x00\x00\x02\x00\x00\x00go"), Request{1, "go"}, nil},
	{"len cuts", []byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x02\x00\x00\x00gox"), Request{2, "go"}, nil},
	{"nul cuts", []byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x05\x00\x00\x00ha\x00lt"), Request{2, "ha"}, nil},
	{"len beyond datagram", []byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x09\x00\x00\x00stop"), Request{2, "stop"}, nil},
	{"magic only", []byte("\xbe\xba\xfe\xca"), Request{0, ""}, nil},
	{"empty", nil, Request{}, ErrBadMagic},
	{"bad magic", []byte("\xca\xfe\xba\xbe\x02\x00\x00\x00\x02\x00\x00\x00go"), Request{}, ErrBadMagic},
	{"len 511", append([]byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\xff\x01\x00\x00"), bytes.Repeat([]byte("x"), 512)...), Request{2, strings.Repeat("x", 511)}, nil},
	{"too large", []byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x00\x02\x00\x00"), Request{}, ErrRequestTooLarge},
}

func TestRequestUnmarshal(t *testing.T) {
	for _, tt := range requestTests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.UnmarshalBinary(tt.raw)
			if !errors.Is(err, tt.err) {
				t.Fatalf("UnmarshalBinary = %v; want %v", err, tt.err)
			}
			if err == nil && r != tt.want {
				t.Errorf("UnmarshalBinary = %+v; want %+v", r, tt.want)
			}
		})
	}
}

func TestRequestTruncates(t *testing.T) {
	r := NewRequest(strings.Repeat("a", 600))
	if len(r.Text) != MaxText {
		t.Errorf("NewRequest(600 chars).Text has %d bytes; want %d", len(r.Text), MaxText)
	}
	if _, err := (Request{Version: 2, Text: strings.Repeat("a", 512)}).MarshalBinary(); !errors.Is(err, ErrTextTooLong) {
		t.Errorf("MarshalBinary(512 chars) = %v; want ErrTextTooLong", err)
	}
}

var replyTests = []struct {
	name string
	raw  string // hex
	want Reply
	err  error
}{
	{"empty ok", "00000000 00000000 01000000 00", Reply{}, nil},
	{"more", "00000000 01000000 06000000 68656c6c6f00", Reply{More: true, Text: "hello"}, nil},
	{"errno", "edffffff 00000000 06000000 20776f726c6400", Reply{Err: 0xffffffed, Text: " world"}, nil},
	{"nul inside", "01000000 00000000 04000000 61006200", Reply{Err: 1, Text: "a"}, nil},
	{"short", "00000000 00000000 0100", Reply{}, ErrShortReply},
	{"len 0", "00000000 00000000 00000000", Reply{}, ErrBadReplyLength},
	{"len beyond", "00000000 00000000 05000000 6100", Reply{}, ErrBadReplyLength},
	{"len 513", "00000000 00000000 01020000 00", Reply{}, ErrBadReplyLength},
}

func TestReplyUnmarshal(t *testing.T) {
	for _, tt := range replyTests {
		t.Run(tt.name, func(t *testing.T) {
			var r Reply
			err := r.UnmarshalBinary(hexb(t, tt.raw))
			if !errors.Is(err, tt.err) {
				t.Fatalf("UnmarshalBinary = %v; want %v", err, tt.err)
			}
			if err == nil && r != tt.want {
				t.Errorf("UnmarshalBinary = %+v; want %+v", r, tt.want)
			}
		})
	}
}

func TestReplyMarshal(t *testing.T) {
	b, err := Reply{Err: 1, More: true, Text: "Unknown command"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := hexb(t, "01000000 01000000 10000000") // len 16 = 15 + NUL
	want = append(append(want, "Unknown command"...), 0)
	if !bytes.Equal(b, want) {
		t.Errorf("MarshalBinary = %x; want %x", b, want)
	}
	if b, _ := (Reply{}).MarshalBinary(); len(b) != 13 {
		t.Errorf("empty reply is %d bytes; want 13", len(b))
	}
	if _, err := (Reply{Text: strings.Repeat("x", 512)}).MarshalBinary(); !errors.Is(err, ErrTextTooLong) {
		t.Errorf("MarshalBinary(512 chars) = %v; want ErrTextTooLong", err)
	}
}

func TestSplit(t *testing.T) {
	help := KernelHelp()
	got := Split(0, help, true)
	want := []Reply{{More: true, Text: help[:511]}, {Text: help[511:]}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Split(help) mismatch (-want +got):\n%s", diff)
	}
	if got := Split(1, "", true); !cmp.Equal(got, []Reply{{Err: 1}}) {
		t.Errorf("Split(1, \"\", true) = %+v", got)
	}
	got = Split(5, strings.Repeat("y", 1022), false)
	want = []Reply{{Err: 5, More: true, Text: strings.Repeat("y", 511)}, {More: true, Text: strings.Repeat("y", 511)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Split(stream) mismatch (-want +got):\n%s", diff)
	}
}

func TestKernelHelpFixture(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "spec", "fixtures", "mconsole-help-reply.txt"))
	if err != nil {
		want, err = os.ReadFile("testdata/help-reply.txt")
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := KernelHelp(); got != string(want) {
		t.Errorf("KernelHelp() = %q\nwant %q", got, want)
	}
	if len(KernelHelp()) != 722 {
		t.Errorf("len(KernelHelp()) = %d; want 722", len(KernelHelp()))
	}
}

func TestNotify(t *testing.T) {
	n := Notify{Type: NotifyUser, Data: []byte("hello from uml\n")}
	b, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := hexb(t, "bebafeca 02000000 03000000 0f000000")
	want = append(want, "hello from uml\n"...)
	if !bytes.Equal(b, want) {
		t.Errorf("MarshalBinary = %x; want %x", b, want)
	}
	var got Notify
	if err := got.UnmarshalBinary(b); err != nil || !cmp.Equal(got, n) {
		t.Errorf("UnmarshalBinary = %+v, %v; want %+v", got, err, n)
	}
	hang := hexb(t, "BEBAFECA00000000 02000000 02000000 00000000 00000000")
	if !bytes.Equal(WatchdogHangPacket(), hang) {
		t.Errorf("WatchdogHangPacket() = %x; want %x", WatchdogHangPacket(), hang)
	}
	if err := got.UnmarshalBinary(hang); err != nil || got.Type != NotifyHang {
		t.Errorf("UnmarshalBinary(hang) = %+v, %v; want hang", got, err)
	}
	for _, bad := range []string{"bebafeca0200", "cafebabe 02000000 00000000 00000000", "bebafeca 02000000 00000000 05000000 6162"} {
		if err := got.UnmarshalBinary(hexb(t, bad)); err == nil {
			t.Errorf("UnmarshalBinary(%s) succeeded", bad)
		}
	}
}

func TestErrnoAndExit(t *testing.T) {
	for _, tt := range []struct {
		errno, exit int
	}{{19, 237}, {16, 240}, {2, 254}, {22, 234}} {
		if got := ExitStatus(Errno(tt.errno)); got != tt.exit {
			t.Errorf("ExitStatus(Errno(%d)) = %d; want %d", tt.errno, got, tt.exit)
		}
	}
	if ExitStatus(1) != 1 || ExitStatus(0) != 0 {
		t.Error("ExitStatus(1/0) wrong")
	}
}
