//go:build linux

package sys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var abstractSeq atomic.Int32

// abstractAddr is an abstract sockaddr_un for a unique name; full pads it
// with NULs to the whole 108-byte sun_path (addrlen 110, as UML does).
func abstractAddr(t *testing.T, full bool) []byte {
	t.Helper()
	name := fmt.Sprintf("umlkit-sys-test-%d-%d", os.Getpid(), abstractSeq.Add(1))
	n := 2 + 1 + len(name)
	if full {
		n = unix.SizeofSockaddrUnix
	}
	a := make([]byte, n)
	binary.NativeEndian.PutUint16(a, unix.AF_UNIX)
	copy(a[3:], name)
	return a
}

// pathAddr is a sockaddr_un for path (family, path, NUL).
func pathAddr(path string) []byte {
	a := make([]byte, 2+len(path)+1)
	binary.NativeEndian.PutUint16(a, unix.AF_UNIX)
	copy(a[2:], path)
	return a
}

func dgramSocket(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// A lost datagram must fail the test, not hang it.
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	return fd
}

func TestBindSendtoRecvfrom(t *testing.T) {
	tests := []struct {
		name string
		addr func(t *testing.T) []byte
	}{
		{"abstract full length", func(t *testing.T) []byte { return abstractAddr(t, true) }},
		{"abstract short", func(t *testing.T) []byte { return abstractAddr(t, false) }},
		{"path", func(t *testing.T) []byte { return pathAddr(filepath.Join(t.TempDir(), "sock")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rx, tx := dgramSocket(t), dgramSocket(t)
			rxAddr, txAddr := tt.addr(t), tt.addr(t)
			if err := BindRaw(rx, rxAddr); err != nil {
				t.Fatalf("BindRaw(rx) = %v", err)
			}
			if err := BindRaw(tx, txAddr); err != nil {
				t.Fatalf("BindRaw(tx) = %v", err)
			}
			msg := []byte("frame")
			if err := SendtoRaw(tx, msg, 0, rxAddr); err != nil {
				t.Fatalf("SendtoRaw = %v", err)
			}
			buf, from := make([]byte, 64), make([]byte, 128)
			n, fromlen, err := RecvfromRaw(rx, buf, 0, from)
			if err != nil {
				t.Fatalf("RecvfromRaw = %v", err)
			}
			if !bytes.Equal(buf[:n], msg) {
				t.Errorf("RecvfromRaw data = %q; want %q", buf[:n], msg)
			}
			// The sender's address comes back with its exact bytes and
			// length, which also shows BindRaw passed them verbatim.
			if !bytes.Equal(from[:fromlen], txAddr) {
				t.Errorf("RecvfromRaw from = %q (%d bytes); want %q (%d bytes)", from[:fromlen], fromlen, txAddr, len(txAddr))
			}

			// An empty datagram is sent and received as such.
			if err := SendtoRaw(tx, nil, unix.MSG_DONTWAIT, rxAddr); err != nil {
				t.Fatalf("SendtoRaw(empty) = %v", err)
			}
			if n, _, err := RecvfromRaw(rx, buf, 0, from); n != 0 || err != nil {
				t.Errorf("RecvfromRaw(empty datagram) = %d, %v; want 0, nil", n, err)
			}

			// ConnectRaw: a connected socket sends with no address.
			if err := ConnectRaw(tx, rxAddr); err != nil {
				t.Fatalf("ConnectRaw = %v", err)
			}
			if err := SendtoRaw(tx, msg, 0, nil); err != nil {
				t.Fatalf("SendtoRaw(connected) = %v", err)
			}
			if n, _, err := RecvfromRaw(rx, buf, 0, from); err != nil || !bytes.Equal(buf[:n], msg) {
				t.Errorf("RecvfromRaw(after connect) = %q, %v; want %q", buf[:n], err, msg)
			}

			// Errors are bare errnos, comparable with ==.
			again := dgramSocket(t)
			if err := BindRaw(again, rxAddr); err != unix.EADDRINUSE {
				t.Errorf("BindRaw(address in use) = %v; want EADDRINUSE", err)
			}
		})
	}
}

func TestRawErrors(t *testing.T) {
	unbound := abstractAddr(t, true)
	tests := []struct {
		name string
		call func() error
		want syscall.Errno
	}{
		{"BindRaw bad fd", func() error { return BindRaw(-1, abstractAddr(t, true)) }, unix.EBADF},
		{"BindRaw no address", func() error { return BindRaw(dgramSocket(t), nil) }, unix.EINVAL},
		{"ConnectRaw nobody", func() error { return ConnectRaw(dgramSocket(t), unbound) }, unix.ECONNREFUSED},
		{"SendtoRaw nobody", func() error { return SendtoRaw(dgramSocket(t), []byte("x"), 0, unbound) }, unix.ECONNREFUSED},
		{"SendtoRaw missing path", func() error {
			return SendtoRaw(dgramSocket(t), []byte("x"), 0, pathAddr(filepath.Join(t.TempDir(), "none")))
		}, unix.ENOENT},
		{"RecvfromRaw nothing queued", func() error {
			_, _, err := RecvfromRaw(dgramSocket(t), make([]byte, 8), unix.MSG_DONTWAIT, make([]byte, 128))
			return err
		}, unix.EAGAIN},
	}
	for _, tt := range tests {
		if err := tt.call(); err != tt.want {
			t.Errorf("%s = %v; want bare %v", tt.name, err, tt.want)
		}
	}
}

func TestMmsgRoundTrip(t *testing.T) {
	a, b, err := FilePair(unix.SOCK_DGRAM, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	tx, rx := int(a.Fd()), int(b.Fd())

	msgs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte("x"), 1500), []byte("four")}
	out := NewMmsg(8)
	out.Set(0, []byte("not sent"), nil) // Sendmmsg from 1 skips it
	for i, m := range msgs {
		out.Set(1+i, m, nil)
		if out.BufLen(1+i) != len(m) {
			t.Errorf("BufLen(%d) = %d; want %d", 1+i, out.BufLen(1+i), len(m))
		}
	}
	n, err := out.Sendmmsg(tx, 1, len(msgs), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	if err != nil || n != len(msgs) {
		t.Fatalf("Sendmmsg = %d, %v; want %d, nil", n, err, len(msgs))
	}

	in := NewMmsg(8)
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
		in.Set(i, bufs[i], nil)
	}
	in.Set(2, bufs[2][:1000], nil) // too small for message 2 (1500 bytes)
	n, err = in.Recvmmsg(rx, 0, 8, unix.MSG_DONTWAIT)
	if err != nil || n != len(msgs) {
		t.Fatalf("Recvmmsg = %d, %v; want %d, nil", n, err, len(msgs))
	}
	for i, m := range msgs {
		h := in.Hdrs[i]
		trunc := h.Hdr.Flags&unix.MSG_TRUNC != 0
		if i == 2 {
			if !trunc || h.Len != 1000 || !bytes.Equal(bufs[i][:h.Len], m[:1000]) {
				t.Errorf("message 2 into 1000 bytes: Len %d, MSG_TRUNC %v; want 1000, true", h.Len, trunc)
			}
			continue
		}
		if trunc || !bytes.Equal(bufs[i][:h.Len], m) {
			t.Errorf("message %d = %q (trunc %v); want %q", i, bufs[i][:h.Len], trunc, m)
		}
	}

	// Nothing left: EAGAIN, bare. Zero messages: nothing to do.
	if n, err := in.Recvmmsg(rx, 0, 8, unix.MSG_DONTWAIT); n != 0 || err != unix.EAGAIN {
		t.Errorf("Recvmmsg(empty queue) = %d, %v; want 0, EAGAIN", n, err)
	}
	if n, err := in.Recvmmsg(rx, 8, 0, unix.MSG_DONTWAIT); n != 0 || err != nil {
		t.Errorf("Recvmmsg(n=0) = %d, %v; want 0, nil", n, err)
	}
}

func TestMmsgAddresses(t *testing.T) {
	rx, tx := dgramSocket(t), dgramSocket(t)
	rxAddr, txAddr := abstractAddr(t, true), abstractAddr(t, true)
	if err := BindRaw(rx, rxAddr); err != nil {
		t.Fatal(err)
	}
	if err := BindRaw(tx, txAddr); err != nil {
		t.Fatal(err)
	}
	const k = 3
	out := NewMmsg(k)
	for i := 0; i < k; i++ {
		out.Set(i, []byte{byte('a' + i)}, rxAddr)
	}
	if n, err := out.Sendmmsg(tx, 0, k, 0); err != nil || n != k {
		t.Fatalf("Sendmmsg = %d, %v; want %d, nil", n, err, k)
	}
	in := NewMmsg(k)
	names := make([][unix.SizeofSockaddrUnix + 18]byte, k)
	bufs := make([][16]byte, k)
	for i := range k {
		in.Set(i, bufs[i][:], names[i][:])
	}
	n, err := in.Recvmmsg(rx, 0, k, 0)
	if err != nil || n != k {
		t.Fatalf("Recvmmsg = %d, %v; want %d, nil", n, err, k)
	}
	for i := range k {
		h := in.Hdrs[i]
		if got := bufs[i][:h.Len]; string(got) != string(rune('a'+i)) {
			t.Errorf("message %d = %q; want %q", i, got, string(rune('a'+i)))
		}
		if got := names[i][:h.Hdr.Namelen]; !bytes.Equal(got, txAddr) {
			t.Errorf("message %d from %q (%d bytes); want %q (%d bytes)", i, got, len(got), txAddr, len(txAddr))
		}
	}
}

func TestStrerror(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{unix.ENOENT, "No such file or directory"},
		{unix.ENOTTY, "Inappropriate ioctl for device"},
		{unix.EACCES, "Permission denied"},
		{unix.ECONNREFUSED, "Connection refused"},
		{unix.EADDRINUSE, "Address already in use"},
		{unix.EBADF, "Bad file descriptor"},
		{unix.ENOTSOCK, "Socket operation on non-socket"},
		{unix.ENXIO, "No such device or address"},
		{unix.EAGAIN, "Resource temporarily unavailable"},
		{os.NewSyscallError("connect", unix.EPERM), "Operation not permitted"},
		{&os.PathError{Op: "open", Path: "/x", Err: unix.ENOENT}, "No such file or directory"},
		{fmt.Errorf("ioctl TUNSETIFF: %w", os.NewSyscallError("ioctl", unix.EBUSY)), "Device or resource busy"},
		{&net.OpError{Op: "write", Net: "unixgram", Err: os.NewSyscallError("sendmsg", unix.EPIPE)}, "Broken pipe"},
		{errors.New("plain text"), "plain text"},
		{nil, "Success"},
	}
	for _, tt := range tests {
		if got := Strerror(tt.err); got != tt.want {
			t.Errorf("Strerror(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}

func TestErrnoOf(t *testing.T) {
	tests := []struct {
		err  error
		def  syscall.Errno
		want syscall.Errno
	}{
		{nil, unix.EIO, 0},
		{unix.ENOENT, unix.EIO, unix.ENOENT},
		{fmt.Errorf("exec: %w", unix.ENOEXEC), 0, unix.ENOEXEC},
		{&os.PathError{Op: "open", Path: "/x", Err: unix.EACCES}, unix.EINVAL, unix.EACCES},
		{os.NewSyscallError("bind", unix.EADDRINUSE), 0, unix.EADDRINUSE},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", unix.ECONNREFUSED)}, 0, unix.ECONNREFUSED},
		{errors.Join(errors.New("first"), unix.EPERM), 0, unix.EPERM},
		{errors.New("no errno"), unix.EINVAL, unix.EINVAL},
		{io.EOF, 0, 0},
		{io.EOF, unix.ENOEXEC, unix.ENOEXEC},
	}
	for _, tt := range tests {
		if got := ErrnoOf(tt.err, tt.def); got != tt.want {
			t.Errorf("ErrnoOf(%v, %d) = %d; want %d", tt.err, tt.def, got, tt.want)
		}
	}
}

func cloexec(t *testing.T, f *os.File) bool {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) })
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// blockingPipe is a pipe whose read end is blocking and wrapped by
// os.NewFile, like a descriptor inherited through exec: not on the poller.
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "inherited"), os.NewFile(uintptr(p[1]), "w")
	t.Cleanup(func() { w.Close() })
	return r, w
}

func TestPollable(t *testing.T) {
	tests := []struct {
		name string
		// unblock ends a read in progress on p; want is the read's error.
		unblock func(p *os.File)
		want    error
	}{
		{"deadline", func(p *os.File) { p.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) }, os.ErrDeadlineExceeded},
		{"close", func(p *os.File) { time.Sleep(50 * time.Millisecond); p.Close() }, os.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w := blockingPipe(t)
			if err := r.SetReadDeadline(time.Now()); !errors.Is(err, os.ErrNoDeadline) {
				t.Fatalf("blocking pipe: SetReadDeadline = %v; want ErrNoDeadline (the test needs an unpollable file)", err)
			}
			p, err := Pollable(r, "con-in")
			if err != nil {
				t.Fatalf("Pollable = %v", err)
			}
			defer p.Close()
			if err := r.Close(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("original after Pollable: Close = %v; want ErrClosed", err)
			}
			if p.Name() != "con-in" || !cloexec(t, p) || p.Fd() < 3 {
				t.Errorf("Pollable = %q fd %d (cloexec %v); want \"con-in\", fd >= 3, cloexec", p.Name(), p.Fd(), cloexec(t, p))
			}
			// Data still flows.
			w.Write([]byte("hi"))
			buf := make([]byte, 8)
			if n, err := p.Read(buf); err != nil || string(buf[:n]) != "hi" {
				t.Fatalf("Read = %q, %v; want hi", buf[:n], err)
			}
			// A read with nothing to read ends by deadline or Close.
			done := make(chan error, 1)
			go func() {
				_, err := p.Read(buf)
				done <- err
			}()
			tt.unblock(p)
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) {
					t.Errorf("blocked Read = %v; want %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Read still blocked 5s after the deadline/Close")
			}
		})
	}
}

func TestPollableNotPollable(t *testing.T) {
	// /dev/null cannot join epoll: the file still works, without deadlines.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Pollable(f, "null")
	if err != nil {
		t.Fatalf("Pollable(/dev/null) = %v", err)
	}
	defer p.Close()
	if n, err := p.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read(/dev/null) = %d, %v; want 0, EOF", n, err)
	}
	// A nil or closed file is an error and is left alone.
	if _, err := Pollable(nil, "nil"); err == nil {
		t.Error("Pollable(nil) = nil error")
	}
	if _, err := Pollable(f, "closed"); err == nil {
		t.Error("Pollable(closed file) = nil error")
	}
}

func TestFilePair(t *testing.T) {
	tests := []struct {
		name string
		typ  int
	}{
		{"stream", unix.SOCK_STREAM},
		{"dgram", unix.SOCK_DGRAM},
		{"seqpacket", unix.SOCK_SEQPACKET},
	}
	for _, tt := range tests {
		typ := tt.typ
		t.Run(tt.name, func(t *testing.T) {
			a, b, err := FilePair(typ, "left", "right")
			if err != nil {
				t.Fatalf("FilePair = %v", err)
			}
			defer a.Close()
			defer b.Close()
			if a.Name() != "left" || b.Name() != "right" {
				t.Errorf("names %q, %q; want left, right", a.Name(), b.Name())
			}
			for _, f := range []*os.File{a, b} {
				if !cloexec(t, f) {
					t.Errorf("%s: not close-on-exec", f.Name())
				}
				got, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
				if err != nil || got != typ {
					t.Errorf("%s: SO_TYPE = %d, %v; want %d", f.Name(), got, err, typ)
				}
			}
			if _, err := a.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			if n, err := b.Read(buf); err != nil || string(buf[:n]) != "ping" {
				t.Errorf("Read = %q, %v; want ping", buf[:n], err)
			}
		})
	}
	if _, _, err := FilePair(-1, "a", "b"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("FilePair(-1) = %v; want EINVAL", err)
	}
}
