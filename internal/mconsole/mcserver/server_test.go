package mcserver_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mcclient"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
	"github.com/umlkit/umlkit/internal/testutil"
)

// start serves a server with the 13 kernel commands (trivial handlers).
func start(t *testing.T) (*mcserver.Server, *mcclient.Client) {
	t.Helper()
	testutil.LeakCheck(t)
	path := filepath.Join(t.TempDir(), "mconsole")
	s, err := mcserver.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range mconsole.KernelCommands {
		if c.Name == "help" || c.Name == "stop" || c.Name == "go" {
			continue
		}
		name := c.Name
		s.Handle(name, c.Help, func(_ context.Context, r *mcserver.Request) mcserver.Reply {
			return mcserver.OK(name + ":" + r.Arg)
		})
	}
	s.HandleStopGo(func() {}, func() {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c, err := mcclient.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		s.Close() // idempotent
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left behind after Close", path)
		}
	})
	return s, c
}

func send(t *testing.T, c *mcclient.Client, text string) *mcclient.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Send(ctx, text)
	if err != nil {
		t.Fatalf("Send(%q): %v", text, err)
	}
	return r
}

func TestDispatch(t *testing.T) {
	_, c := start(t)
	for _, tt := range []struct {
		text, want string
		err        uint32
	}{
		{"version", "version:", 0},
		{"versionXYZ", "version:XYZ", 0},
		{"config ubd1=/x", "config: ubd1=/x", 0},
		{" version", "Unknown command", 1},
		{"HELP", "Unknown command", 1},
		{"", "Unknown command", 1},
		{"go", "Not stopped", 1},
		{"stop", "stopped", 0},
		{"stop", "Already stopped", 1},
		{"log x", "log: x", 0},
		{"go", "", 0},
		{"go", "Not stopped", 1},
	} {
		r := send(t, c, tt.text)
		if r.Text != tt.want || r.Err != tt.err {
			t.Errorf("Send(%q) = %d %q; want %d %q", tt.text, r.Err, r.Text, tt.err, tt.want)
		}
	}
}

func TestHelpIsKernelText(t *testing.T) {
	s, c := start(t)
	r := send(t, c, "help")
	if r.Text != mconsole.KernelHelp() || r.Parts != 2 || r.Err != 0 {
		t.Errorf("help: %d parts, err %d, text %q; want the 722-byte kernel text in 2 parts", r.Parts, r.Err, r.Text)
	}
	if s.HelpText() != mconsole.KernelHelp() {
		t.Errorf("HelpText() differs from the kernel's")
	}
}

func TestLongReplyAndStream(t *testing.T) {
	s, c := start(t)
	long := strings.Repeat("0123456789", 150)
	s.Handle("proc", mcserver.KernelHelp("proc"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		r.Stream("\n")
		r.Stream(long)
		return mcserver.OK("")
	})
	s.Handle("stack", mcserver.KernelHelp("stack"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		return mcserver.Reply{Err: mconsole.Errno(19), Text: long}
	})
	r := send(t, c, "proc meminfo")
	if r.Text != "\n"+long || r.Parts != 1+3+1 || r.Err != 0 {
		t.Errorf("proc: %d parts, err %d, %d bytes; want 5 parts, 0, %d bytes", r.Parts, r.Err, len(r.Text), 1+len(long))
	}
	r = send(t, c, "stack 1")
	// err is only on the first packet; uml_mconsole reports the last one's.
	if r.Text != long || r.Parts != 3 || r.Err != 0 {
		t.Errorf("stack: %d parts, err %d; want 3 parts, err 0 (last packet's)", r.Parts, r.Err)
	}
}

func TestAfterRunsAfterReply(t *testing.T) {
	s, c := start(t)
	halted := make(chan struct{})
	s.Handle("halt", mcserver.KernelHelp("halt"), func(context.Context, *mcserver.Request) mcserver.Reply {
		return mcserver.Reply{After: func() { close(halted) }}
	})
	if r := send(t, c, "halt"); r.Text != "" || r.Err != 0 {
		t.Errorf("halt = %+v", r)
	}
	select {
	case <-halted:
	case <-time.After(5 * time.Second):
		t.Fatal("After did not run")
	}
}

func TestProtocolErrors(t *testing.T) {
	s, _ := start(t)
	// A raw client bound to a path so we can read undecodable replies.
	dir := t.TempDir()
	laddr := &net.UnixAddr{Name: filepath.Join(dir, "c"), Net: "unixgram"}
	conn, err := net.ListenUnixgram("unixgram", laddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UnixAddr{Name: s.Path(), Net: "unixgram"}
	recv := func() []byte {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1024)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		return b[:n]
	}
	reply := func(b []byte) mconsole.Reply {
		var r mconsole.Reply
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatalf("reply %q: %v", b, err)
		}
		return r
	}
	// bad magic: bare text
	conn.WriteTo([]byte("\x00\x00\x00\x00\x02\x00\x00\x00"), to)
	if got := recv(); string(got) != mconsole.Version0Reply {
		t.Errorf("bad magic reply = %q; want %q", got, mconsole.Version0Reply)
	}
	// too large
	big := []byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x00\x02\x00\x00")
	conn.WriteTo(big, to)
	if r := reply(recv()); r != (mconsole.Reply{Err: 1, Text: "Request too large"}) {
		t.Errorf("too large reply = %+v", r)
	}
	// version 1: a warning, then the result
	conn.WriteTo([]byte("\xbe\xba\xfe\xca\x01\x00\x00\x00\x07\x00\x00\x00version"), to)
	if r := reply(recv()); r != (mconsole.Reply{Err: 1, Text: "This driver only supports version 2 clients"}) {
		t.Errorf("version 1 first reply = %+v", r)
	}
	if r := reply(recv()); r != (mconsole.Reply{Text: "version:"}) {
		t.Errorf("version 1 second reply = %+v", r)
	}
	// exact bytes of an empty reply: 13 bytes
	conn.WriteTo([]byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x02\x00\x00\x00go"), to)
	if got := recv(); !bytes.Equal(got, append([]byte("\x01\x00\x00\x00\x00\x00\x00\x00\x0c\x00\x00\x00"), "Not stopped\x00"...)) {
		t.Errorf("go reply bytes = %q", got)
	}
}

func TestListenStaleAndInUse(t *testing.T) {
	s, _ := start(t)
	if _, err := mcserver.Listen(s.Path()); !errors.Is(err, mcserver.ErrInUse) {
		t.Errorf("Listen(live socket) = %v; want ErrInUse", err)
	}
	// a stale socket: bound, then its owner closed without unlinking
	stale := filepath.Join(t.TempDir(), "mconsole")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: stale, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	s2, err := mcserver.Listen(stale)
	if err != nil {
		t.Fatalf("Listen(stale socket) = %v", err)
	}
	s2.Close()
	if _, err := mcserver.Listen(filepath.Join(t.TempDir(), strings.Repeat("x", 120))); err == nil {
		t.Error("Listen(long path) succeeded")
	}
}

func TestClientGoneAndTimeout(t *testing.T) {
	testutil.LeakCheck(t)
	path := filepath.Join(t.TempDir(), "mconsole")
	s, err := mcserver.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	s.Handle("stack", "", func(context.Context, *mcserver.Request) mcserver.Reply {
		<-block
		return mcserver.OK("")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c, err := mcclient.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// timeout while the handler blocks
	tctx, tcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = c.Send(tctx, "stack 1")
	tcancel()
	if !errors.Is(err, mcclient.ErrTimeout) {
		t.Errorf("Send(blocked) = %v; want ErrTimeout", err)
	}
	// the socket disappears while we wait: gone
	go func() { time.Sleep(100 * time.Millisecond); os.Remove(path) }()
	tctx, tcancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = c.Send(tctx, "stack 1")
	tcancel()
	if !errors.Is(err, mcclient.ErrGone) {
		t.Errorf("Send(socket removed) = %v; want ErrGone", err)
	}
	close(block)
	cancel()
	<-done
	s.Close()
	// nobody there at all
	tctx, tcancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = c.Send(tctx, "version")
	tcancel()
	if !errors.Is(err, mcclient.ErrGone) {
		t.Errorf("Send(closed server) = %v; want ErrGone", err)
	}
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := mcserver.NotifyFromString(path, mconsole.NotifySocket, "/x/mconsole"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1024)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("\xbe\xba\xfe\xca\x02\x00\x00\x00\x00\x00\x00\x00\x0c\x00\x00\x00"), "/x/mconsole\x00"...)
	if !bytes.Equal(b[:n], want) {
		t.Errorf("notify datagram = %q; want %q", b[:n], want)
	}
}

// TestIntegrationRealClient: Debian's uml_mconsole (bound to its 108-byte
// abstract name) gets our replies.
func TestIntegrationRealClient(t *testing.T) {
	real := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	s, _ := start(t)
	long := strings.Repeat("abcdefghij", 80)
	s.Handle("stack", mcserver.KernelHelp("stack"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		return mcserver.Errno(16, long)
	})
	for _, tt := range []struct {
		args []string
		out  string
		code int
	}{
		{[]string{"version"}, "OK version:\n", 0},
		{[]string{"help"}, "OK " + mconsole.KernelHelp() + "\n" + "Additional local mconsole commands:\n", 0},
		{[]string{"stack", "1"}, "OK " + long + "\n", 0}, // err only on the first part
		{[]string{"bogus"}, "ERR Unknown command\n", 1},
	} {
		cmd := exec.Command(real, append([]string{s.Path()}, tt.args...)...)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(out), tt.out) {
			t.Errorf("uml_mconsole %v = %q; want prefix %q", tt.args, out, tt.out)
		}
		if code != tt.code {
			t.Errorf("uml_mconsole %v exit %d; want %d", tt.args, code, tt.code)
		}
	}
}
