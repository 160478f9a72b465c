package fdpass

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func socketpair(t *testing.T, typ int) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "sp")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conv(fds[0]), conv(fds[1])
}

func TestSendRecvFile(t *testing.T) {
	for _, typ := range []int{unix.SOCK_DGRAM, unix.SOCK_STREAM} {
		a, b := socketpair(t, typ)
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := Send(a, []byte("tap0"), f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		data, files, _, err := Recv(b, 64, 2)
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if string(data) != "tap0" || len(files) != 1 {
			t.Fatalf("Recv = %q, %d files; want \"tap0\", 1", data, len(files))
		}
		buf := make([]byte, 5)
		if _, err := files[0].ReadAt(buf, 0); err != nil || string(buf) != "hello" {
			t.Errorf("received file reads %q, %v; want hello", buf, err)
		}
		files[0].Close()
	}
}

func TestRecvNoFD(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	data, files, _, err := Recv(b, 8, 1)
	if !errors.Is(err, ErrNoFD) || string(data) != "x" || files != nil {
		t.Errorf("Recv = %q, %v, %v; want \"x\", nil, ErrNoFD", data, files, err)
	}
}

func TestExtraFDsClosed(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := Send(a, nil, r, w, r); err != nil {
		t.Fatal(err)
	}
	_, files, _, err := Recv(b, 8, 1)
	if err != nil || len(files) != 1 {
		t.Fatalf("Recv: %d files, %v; want 1", len(files), err)
	}
	files[0].Close()
}

func TestSendRawRecv(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	raw, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var sendErr error
	if err := raw.Control(func(fd uintptr) { sendErr = SendRaw(int(fd), nil, []byte{1, 2, 3, 4}, int(w.Fd())) }); err != nil {
		t.Fatal(err)
	}
	if sendErr != nil {
		t.Fatalf("SendRaw: %v", sendErr)
	}
	data, files, _, err := Recv(b, 4, 1)
	if err != nil || string(data) != "\x01\x02\x03\x04" || len(files) != 1 {
		t.Fatalf("Recv = %q, %d files, %v; want 4 bytes, 1 file", data, len(files), err)
	}
	defer files[0].Close()
	if _, err := files[0].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil || buf[0] != 'x' {
		t.Errorf("pipe read %q, %v; want x", buf, err)
	}
}

func TestSendRawBadFD(t *testing.T) {
	if err := SendRaw(-1, nil, []byte{0}, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("SendRaw(-1) = %v; want EBADF", err)
	}
}

func TestParseRights(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// Two SCM_RIGHTS messages in one control buffer, three fds in all.
	oob := append(unix.UnixRights(int(r.Fd()), int(w.Fd())), unix.UnixRights(int(w.Fd()))...)
	if _, _, err := a.WriteMsgUnix([]byte{0}, oob, nil); err != nil {
		t.Fatal(err)
	}
	buf, roob := make([]byte, 1), make([]byte, 2*unix.CmsgSpace(2*4))
	_, oobn, _, _, err := b.ReadMsgUnix(buf, roob)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := ParseRights(roob[:oobn])
	if err != nil || len(fds) != 3 {
		t.Fatalf("ParseRights = %v, %v; want 3 fds", fds, err)
	}
	for _, fd := range fds {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d: F_GETFD = %#x, %v; want FD_CLOEXEC", fd, flags, err)
		}
		unix.Close(fd)
	}

	if fds, err := ParseRights(nil); err != nil || len(fds) != 0 {
		t.Errorf("ParseRights(nil) = %v, %v; want none, nil", fds, err)
	}
	cut := unix.UnixRights(0)[:unix.SizeofCmsghdr+2] // header claims more than is there
	if _, err := ParseRights(cut); err == nil {
		t.Error("ParseRights(truncated message) = nil error")
	}
}
