//go:build linux

package umlnet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/helperproto"
)

func TestLookupGroup(t *testing.T) {
	p := filepath.Join(t.TempDir(), "group")
	os.WriteFile(p, []byte("root:x:0:\numl-net:x:105:alice,bob\nbad:x:zz:\n"), 0o644)
	if gid, err := lookupGroup(p, "uml-net"); gid != 105 || err != nil {
		t.Errorf("lookupGroup(uml-net) = %d, %v", gid, err)
	}
	for _, name := range []string{"bad", "nosuch", "uml"} {
		if _, err := lookupGroup(p, name); err == nil {
			t.Errorf("lookupGroup(%s) succeeded", name)
		}
	}
}

func TestAuthorize(t *testing.T) {
	if err := authorize(caller{ruid: 0}, "no-such-group-at-all"); err != nil {
		t.Errorf("root refused: %v", err)
	}
	err := authorize(caller{ruid: 60009, rgid: 60009}, "no-such-group-at-all")
	if !errors.Is(err, ErrNotAllowed) {
		t.Errorf("authorize(unknown group) = %v; want ErrNotAllowed", err)
	}
}

func TestErrText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("SIOCADDRT: %w", unix.EEXIST), "SIOCADDRT: File exists"},
		{&os.PathError{Op: "write", Path: "/proc/sys/x", Err: unix.ENOENT}, "write /proc/sys/x: No such file or directory"},
		{errors.New("plain"), "plain"},
	}
	for _, tt := range tests {
		if got := errText(tt.err); got != tt.want {
			t.Errorf("errText(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}

// TestEmitArgvError writes each kind of refusal to fd-like pipes and checks
// the bytes.
func TestEmitArgvError(t *testing.T) {
	tests := []struct {
		ae             helperproto.ArgvError
		stdout, stderr string
	}{
		{helperproto.ArgvError{Stream: helperproto.Stderr, Text: "e\n", Code: 1}, "", "e\n"},
		{helperproto.ArgvError{Stream: helperproto.Stdout, Text: "o\n", Code: 1}, "o\n", ""},
		{helperproto.ArgvError{Stream: helperproto.LengthPrefixed, Text: "l\n", Code: 0}, string(helperproto.AppendLengthPrefixed(nil, "l\n")), ""},
		{helperproto.ArgvError{Stream: helperproto.EthertapStatus, Text: "x\n", Code: 1}, "\x00" + string(helperproto.AppendLengthPrefixed(nil, "x\n")), ""},
		{helperproto.ArgvError{Stream: helperproto.TuntapDatagram, Text: "t\n", Code: 0}, "", "sendmsg: Socket operation on non-socket\n"},
	}
	for _, tt := range tests {
		or, ow, _ := os.Pipe()
		er, ew, _ := os.Pipe()
		code := emitArgvError(Config{Stdout: ow, Stderr: ew}, &tt.ae)
		ow.Close()
		ew.Close()
		out, _ := io.ReadAll(or)
		errb, _ := io.ReadAll(er)
		wantCode := tt.ae.Code
		if tt.ae.Stream == helperproto.TuntapDatagram {
			wantCode = 1 // a pipe is not a socket
		}
		if string(out) != tt.stdout || string(errb) != tt.stderr || code != wantCode {
			t.Errorf("emit %+v = %q, %q, %d; want %q, %q, %d", tt.ae, out, errb, code, tt.stdout, tt.stderr, wantCode)
		}
	}
}
