//go:build linux

package procfuse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
)

// counter is a view whose text changes at every render: "render N\n"
// padded to size bytes.
func counter(name string, size int, n *atomic.Int64) File {
	return File{Name: name, Render: func() []byte {
		s := fmt.Sprintf("render %d\n", n.Add(1))
		return []byte(s + strings.Repeat("x", max(0, size-len(s))))
	}}
}

func mountViews(t *testing.T, maxPinned int64, files ...File) *Server {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	// reachable by every user (t.TempDir's parent is 0700)
	dir, err := os.MkdirTemp("", "procfuse-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	s, err := mount(dir, files, maxPinned)
	if err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		os.Remove(dir)
	})
	return s
}

func TestIntegrationViews(t *testing.T) {
	var renders atomic.Int64
	s := mountViews(t, MaxPinned,
		File{Name: "cmdline", Static: true, Render: func() []byte { return []byte("root=98:0 console=tty0\n") }},
		counter("uptime", 0, &renders),
		counter("big", 300<<10, &renders))

	// a static file has its size, a rendered one size 0, both 0444 root
	for name, size := range map[string]int64{"cmdline": 23, "uptime": 0} {
		st, err := os.Stat(s.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != size || st.Mode() != 0o444 || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: size %d mode %v uid %d; want %d, 0444, root", name, st.Size(), st.Mode(), st.Sys().(*syscall.Stat_t).Uid, size)
		}
	}
	if b, err := os.ReadFile(s.Path("cmdline")); err != nil || string(b) != "root=98:0 console=tty0\n" {
		t.Errorf("cmdline = %q, %v", b, err)
	}

	// each read at offset 0 renders afresh (top's lseek(0) + read)
	f, err := os.Open(s.Path("uptime"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n1, _ := f.ReadAt(buf, 0)
	first := string(buf[:n1])
	n2, _ := f.ReadAt(buf, 0)
	if second := string(buf[:n2]); first == second || !strings.HasPrefix(second, "render ") {
		t.Errorf("two reads at offset 0 gave %q and %q; want two renders", first, second)
	}
	f.Close()

	// a text read in pieces is one render (a read loop sees one text)
	before := renders.Load()
	b, err := readInPieces(s.Path("big"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 300<<10 || renders.Load() != before+1 {
		t.Errorf("read of 300 KiB in 4 KiB pieces: %d bytes, %d renders; want all of it from one render", len(b), renders.Load()-before)
	}
	// FUSE releases a handle after close(2) returns
	if err := testutil.WaitFor(5*time.Second, func() bool { return s.pinned.Load() == 0 }); err != nil {
		t.Errorf("%d bytes still kept after the last close", s.pinned.Load())
	}
}

func readInPieces(path string, piece int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, piece)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestIntegrationViewsReadOnly: nobody, root included, changes a view.
func TestIntegrationViewsReadOnly(t *testing.T) {
	var renders atomic.Int64
	s := mountViews(t, MaxPinned, counter("meminfo", 0, &renders))
	p := s.Path("meminfo")
	for _, flags := range []int{os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		if f, err := os.OpenFile(p, flags, 0); err == nil {
			f.Close()
			t.Errorf("open with flags %#x succeeded", flags)
		} else if !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EACCES) {
			t.Errorf("open with flags %#x: %v; want EROFS or EACCES", flags, err)
		}
	}
	for name, op := range map[string]func() error{
		"chmod":    func() error { return os.Chmod(p, 0o666) },
		"chown":    func() error { return os.Chown(p, 1, 1) },
		"truncate": func() error { return os.Truncate(p, 0) },
		"remove":   func() error { return os.Remove(p) },
		"create":   func() error { return os.WriteFile(filepath.Join(filepath.Dir(p), "new"), nil, 0o644) },
	} {
		if err := op(); err == nil {
			t.Errorf("%s succeeded", name)
		}
	}
	if st, _ := os.Stat(p); st.Mode() != 0o444 {
		t.Errorf("mode is %v after the attempts", st.Mode())
	}
	// an ordinary user reads it (allow_other) and cannot write it either
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
		"cat "+p+" && { echo x > "+p+" && echo WRITTEN; true; }").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "render ") || strings.Contains(string(out), "WRITTEN") {
		t.Errorf("as uid 65534: %q, %v; want the text and a refused write", out, err)
	}
}

// TestIntegrationViewsBounded: many open handles keep at most MaxPinned
// bytes, and every reader still gets whole texts.
func TestIntegrationViewsBounded(t *testing.T) {
	var renders atomic.Int64
	s := mountViews(t, 256<<10, counter("cpuinfo", 64<<10, &renders)) // room for 4 kept texts
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	buf := make([]byte, 4096)
	for i := 0; i < 50; i++ {
		f, err := os.Open(s.Path("cpuinfo"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		if _, err := f.Read(buf); err != nil {
			t.Fatal(err)
		}
		if p := s.pinned.Load(); p > s.max {
			t.Fatalf("%d handles keep %d bytes; limit %d", i+1, p, s.max)
		}
	}
	// the handles past the limit re-render per read but still read whole texts
	last := files[len(files)-1]
	rest, err := io.ReadAll(last)
	if err != nil || len(rest) != 64<<10-4096 {
		t.Errorf("rest of an unkept handle: %d bytes, %v; want %d", len(rest), err, 64<<10-4096)
	}
	for _, f := range files {
		f.Close()
	}
	files = nil
	if err := testutil.WaitFor(5*time.Second, func() bool { return s.pinned.Load() == 0 }); err != nil {
		t.Errorf("%d bytes kept after every handle closed", s.pinned.Load())
	}
}

// TestIntegrationViewsSendfile: sendfile(2) (busybox's cat) reads each
// open's whole text although every open's text has another length, also
// through a bind mount of the file (the guest's way in, where the kernel
// never revalidates the file's attributes).
func TestIntegrationViewsSendfile(t *testing.T) {
	var renders atomic.Int64
	lengths := []int{43, 9000, 25, 5000, 30, 4096, 4097}
	s := mountViews(t, MaxPinned, File{Name: "meminfo", Render: func() []byte {
		i := renders.Add(1)
		l := lengths[int(i)%len(lengths)]
		text := fmt.Sprintf("render %d len %d\n", i, l)
		return []byte(text + strings.Repeat("x", l-len(text)-1) + "\n")
	}})
	target := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(s.Path("meminfo"), target, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(target, syscall.MNT_DETACH)
	for _, path := range []string{s.Path("meminfo"), target} {
		for i := 0; i < 3*len(lengths); i++ {
			got, err := sendfileAll(path)
			if err != nil {
				t.Fatal(err)
			}
			var n, l int
			fmt.Sscanf(string(got), "render %d len %d", &n, &l)
			if l == 0 || len(got) != l || got[len(got)-1] != '\n' {
				t.Errorf("sendfile of %s: %d bytes starting %q; want the whole text", path, len(got), got[:min(len(got), 30)])
			}
		}
	}
}

// sendfileAll copies path with sendfile(2) into a temporary file and
// returns what arrived.
func sendfileAll(path string) ([]byte, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.CreateTemp("", "sendfile-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	for {
		n, err := syscall.Sendfile(int(out.Fd()), int(in.Fd()), nil, 1<<20)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	return os.ReadFile(out.Name())
}
