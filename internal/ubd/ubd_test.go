//go:build linux

package ubd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/cow"
)

// newBacking writes a backing file of size bytes of pseudo-random data.
func newBacking(t *testing.T, dir string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(data)
	p := filepath.Join(dir, "backing.img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1700000000, 0)
	os.Chtimes(p, mt, mt)
	return p, data
}

func readAll(t *testing.T, d *Disk) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	if n, err := d.ReadAt(b, 0); err != nil || int64(n) != d.Size() {
		t.Fatalf("ReadAt(all) = %d, %v", n, err)
	}
	return b
}

func TestCreateCOW(t *testing.T) {
	dir := t.TempDir()
	back, _ := newBacking(t, dir, 51200)
	c := filepath.Join(dir, "x.cow")
	if err := CreateCOW(c, back, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(c)
	if err != nil || st.Size() != 63488 {
		t.Fatalf("COW file: %v, size %d; want 63488", err, st.Size())
	}
	raw, _ := os.ReadFile(c)
	var h cow.Header
	if err := h.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	if h.BackingFile != back || h.Mtime != 1700000000 || h.Size != 51200 {
		t.Errorf("header %+v", h)
	}
	if err := CreateCOW(c, back, CreateOptions{}); !errors.Is(err, os.ErrExist) {
		t.Errorf("CreateCOW over existing = %v; want ErrExist", err)
	}
	os.WriteFile(c, bytes.Repeat([]byte{0xFF}, 100000), 0o644)
	if err := CreateCOW(c, back, CreateOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if raw2, _ := os.ReadFile(c); !bytes.Equal(raw, raw2) {
		t.Error("CreateCOW -f kept old contents")
	}
	var ce *CreateError
	if err := CreateCOW(filepath.Join(dir, "y.cow"), filepath.Join(dir, "missing"), CreateOptions{}); !errors.As(err, &ce) ||
		ce.Detail != "write_cow_header - backing file '"+filepath.Join(dir, "missing")+"' mtime request failed, err = 1" {
		t.Errorf("CreateCOW(missing backing) = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "y.cow")); !errors.Is(err, os.ErrNotExist) {
		t.Error("failed CreateCOW left a file behind")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory holds %d entries; want 2", len(ents))
	}
}

func TestAbsolutize(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	os.Mkdir(real, 0o755)
	os.Symlink(real, filepath.Join(dir, "link"))
	for _, tt := range []struct{ in, want string }{
		{filepath.Join(dir, "link", "f.img"), filepath.Join(real, "f.img")},
		{filepath.Join(dir, "link", "..", "real", "g"), filepath.Join(real, "g")},
		{"/h.img", "/h.img"},
	} {
		got, err := Absolutize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Absolutize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := Absolutize("/nonexistent-dir/x"); err == nil || err.Error() != "absolutize : Can't cd to '/nonexistent-dir/x' - errno = 2" {
		t.Errorf("Absolutize(missing dir) = %v", err)
	}
}

func TestCOWDiskReadWrite(t *testing.T) {
	dir := t.TempDir()
	back, data := newBacking(t, dir, 1<<20+300) // a partial last sector
	c := filepath.Join(dir, "d.cow")
	var logs []string
	d, err := Open(Options{File: c, Backing: back, Log: func(l string) { logs = append(logs, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := `Creating "` + c + `" as COW file for "` + back + `"`; len(logs) == 0 || logs[0] != want {
		t.Errorf("log = %q; want %q", logs, want)
	}
	if d.Size() != roundUp(int64(len(data)), 512) {
		t.Errorf("Size = %d", d.Size())
	}
	model := make([]byte, d.Size())
	copy(model, data)
	if got := readAll(t, d); !bytes.Equal(got, model) {
		t.Fatal("fresh COW disk does not read as the backing file")
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		off := rng.Int63n(d.Size())
		n := rng.Intn(20000) + 1
		if i%2 == 0 { // aligned
			off = off / 512 * 512
			n = (n + 511) / 512 * 512
		}
		n = int(min(int64(n), d.Size()-off))
		p := make([]byte, n)
		rng.Read(p)
		if _, err := d.WriteAt(p, off); err != nil {
			t.Fatalf("WriteAt(%d, %d): %v", n, off, err)
		}
		copy(model[off:], p)
	}
	if got := readAll(t, d); !bytes.Equal(got, model) {
		t.Fatal("disk differs from the model after writes")
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if b, _ := os.ReadFile(back); !bytes.Equal(b, data) {
		t.Fatal("backing file was modified")
	}
	d, err = Open(Options{File: c}) // the header names the backing file
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Header() == nil {
		t.Fatal("reopened COW file not detected")
	}
	if got := readAll(t, d); !bytes.Equal(got, model) {
		t.Fatal("reopened disk differs from the model")
	}
	if _, err := d.ReadAt(make([]byte, 10), d.Size()-5); err == nil {
		t.Error("ReadAt across the end: want io.EOF")
	}
	if _, err := d.WriteAt(make([]byte, 512), d.Size()); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("WriteAt past end = %v", err)
	}
}

func TestConcurrentIO(t *testing.T) {
	dir := t.TempDir()
	back, data := newBacking(t, dir, 4<<20)
	d, err := Open(Options{File: filepath.Join(dir, "c.cow"), Backing: back})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var wg sync.WaitGroup
	const workers = 8
	chunk := d.Size() / workers
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func(w int) { // writer: unaligned small writes into its own region
			defer wg.Done()
			for i := int64(0); i < 50; i++ {
				off := int64(w)*chunk + i*1000 + 7
				d.WriteAt(bytes.Repeat([]byte{byte(w + 1)}, 700), off)
			}
		}(w)
		go func() { // reader
			defer wg.Done()
			b := make([]byte, 64<<10)
			for i := 0; i < 50; i++ {
				d.ReadAt(b, int64(i)*(64<<10))
			}
		}()
	}
	wg.Wait()
	got := readAll(t, d)
	for w := 0; w < workers; w++ {
		for i := int64(0); i < 50; i++ {
			off := int64(w)*chunk + i*1000 + 7
			if !bytes.Equal(got[off:off+700], bytes.Repeat([]byte{byte(w + 1)}, 700)) {
				t.Fatalf("writer %d write %d lost", w, i)
			}
			if i < 49 && !bytes.Equal(got[off+700:off+1000], data[off+700:off+1000]) {
				t.Fatalf("bytes between writes of writer %d changed", w)
			}
		}
	}
}

func TestLockingAndShared(t *testing.T) {
	dir := t.TempDir()
	back, _ := newBacking(t, dir, 8192)
	c := filepath.Join(dir, "l.cow")
	d, err := Open(Options{File: c, Backing: back})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := Open(Options{File: c, Backing: back}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open of a locked COW = %v; want ErrLocked", err)
	}
	// Two COW files may share one backing file (read locks).
	d2, err := Open(Options{File: filepath.Join(dir, "other.cow"), Backing: back})
	if err != nil {
		t.Fatalf("second COW over the same backing: %v", err)
	}
	d2.Close()
	// A read-write open of the backing conflicts with its read locks.
	if _, err := Open(Options{File: back, NoCOW: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("rw Open of a backing in use = %v; want ErrLocked", err)
	}
	var logs []string
	d3, err := Open(Options{File: c, Shared: true, Log: func(l string) { logs = append(logs, l) }})
	if err != nil {
		t.Fatalf("Open with c flag: %v", err)
	}
	d3.Close()
	if len(logs) == 0 || logs[0] != `Not locking "`+c+`" on the host` {
		t.Errorf("c flag log = %q", logs)
	}
}

func TestBackingValidation(t *testing.T) {
	dir := t.TempDir()
	back, _ := newBacking(t, dir, 8192)
	c := filepath.Join(dir, "v.cow")
	if err := CreateCOW(c, back, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(back, time.Unix(1700000099, 0), time.Unix(1700000099, 0))
	_, err := Open(Options{File: c})
	want := `mtime mismatch (1700000000 vs 1700000099) of COW header vs backing file "` + back + `"`
	if !errors.Is(err, cow.ErrMtimeMismatch) || err.Error() != want {
		t.Errorf("Open = %v; want %s", err, want)
	}
	err = Merge(context.Background(), MergeOptions{COW: c, Output: filepath.Join(dir, "out")})
	if err == nil || err.Error() != want {
		t.Errorf("Merge = %v; want %s", err, want)
	}
	if _, err := Open(Options{File: filepath.Join(dir, "v2.cow"), Backing: back, NoCOW: true}); !errors.Is(err, ErrCOWAndNoCOW) {
		t.Errorf("Open(d + cow) = %v", err)
	}
	notCOW := filepath.Join(dir, "plain")
	os.WriteFile(notCOW, make([]byte, 1000), 0o644)
	if _, err := Open(Options{File: notCOW, Backing: back}); err == nil || !strings.Contains(err.Error(), "Failed to read COW header") {
		t.Errorf("Open(plain as COW) = %v", err)
	}
}

func TestPlainDisk(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plain.img")
	os.WriteFile(p, bytes.Repeat([]byte{1}, 1000), 0o644)
	d, err := Open(Options{File: p})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 1024 || d.Header() != nil {
		t.Fatalf("Size = %d, header %v; want 1024, nil", d.Size(), d.Header())
	}
	got := readAll(t, d)
	if !bytes.Equal(got[:1000], bytes.Repeat([]byte{1}, 1000)) || !bytes.Equal(got[1000:], make([]byte, 24)) {
		t.Error("plain disk contents wrong (tail must read as zeros)")
	}
	d.WriteAt([]byte("hello"), 3)
	if b, _ := os.ReadFile(p); string(b[3:8]) != "hello" {
		t.Error("write did not reach the image")
	}
	ro, err := Open(Options{File: p, ReadOnly: true, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.WriteAt([]byte("x"), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write to r disk = %v", err)
	}
}

func TestDiscard(t *testing.T) {
	dir := t.TempDir()
	back, data := newBacking(t, dir, 1<<20)
	d, err := Open(Options{File: filepath.Join(dir, "t.cow"), Backing: back})
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt(bytes.Repeat([]byte{5}, 8192), 4096)
	if err := d.Discard(8192, 16384); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, d)
	want := append([]byte(nil), data...)
	copy(want[4096:], bytes.Repeat([]byte{5}, 8192))
	clear(want[8192 : 8192+16384])
	if !bytes.Equal(got, want) {
		t.Error("COW disk after Discard differs")
	}
	d.Close()
	p := filepath.Join(dir, "plain.img")
	os.WriteFile(p, bytes.Repeat([]byte{1}, 8192), 0o644)
	pd, _ := Open(Options{File: p})
	if err := pd.Discard(0, 4096); err != nil {
		t.Fatal(err)
	}
	pd.Close()
	if b, _ := os.ReadFile(p); !bytes.Equal(b[:4096], make([]byte, 4096)) || b[4096] != 1 {
		t.Error("plain Discard wrong")
	}
	nt, _ := Open(Options{File: p, NoTrim: true})
	defer nt.Close()
	if err := nt.Discard(0, 512); !errors.Is(err, ErrNoTrim) {
		t.Errorf("Discard with t flag = %v", err)
	}
}

func TestBackingSwitch(t *testing.T) {
	dir := t.TempDir()
	back, data := newBacking(t, dir, 64<<10)
	c := filepath.Join(dir, "s.cow")
	if err := CreateCOW(c, back, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Same file under another name: accepted silently.
	link := filepath.Join(dir, "link.img")
	os.Symlink(back, link)
	var logs []string
	logf := func(l string) { logs = append(logs, l) }
	d, err := Open(Options{File: c, Backing: link, Log: logf})
	if err != nil || len(logs) != 0 {
		t.Fatalf("Open via symlink = %v, logs %q", err, logs)
	}
	d.Close()
	// A moved copy with the same size and mtime: switch and rewrite the header.
	moved := filepath.Join(dir, "moved.img")
	os.WriteFile(moved, data, 0o644)
	os.Chtimes(moved, time.Unix(1700000000, 0), time.Unix(1700000000, 0))
	d, err = Open(Options{File: c, Backing: moved, Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	want := []string{
		`Backing file mismatch - "` + moved + `" requested, "` + back + `" specified in COW header of "` + c + `"`,
		"Switching backing file to '" + moved + "'",
	}
	if strings.Join(logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs = %q; want %q", logs, want)
	}
	if h := headerOf(t, c); h.BackingFile != moved {
		t.Errorf("header names %q after the switch; want %q", h.BackingFile, moved)
	}
	// A different file fails.
	other := filepath.Join(dir, "other.img")
	os.WriteFile(other, data[:1000], 0o644)
	if _, err := Open(Options{File: c, Backing: other}); !errors.Is(err, cow.ErrSizeMismatch) {
		t.Errorf("Open with a wrong backing file = %v; want size mismatch", err)
	}
}

// BenchmarkCOWSequential measures 1 MiB sequential writes and reads through
// a COW disk (go test -bench COW ./internal/ubd).
func BenchmarkCOWSequential(b *testing.B) {
	dir := b.TempDir()
	back := filepath.Join(dir, "b.img")
	f, _ := os.Create(back)
	f.Truncate(64 << 20)
	f.Close()
	d, err := Open(Options{File: filepath.Join(dir, "c.cow"), Backing: back})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := bytes.Repeat([]byte{1}, 1<<20)
	b.Run("write", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for i := 0; i < b.N; i++ {
			if _, err := d.WriteAt(buf, int64(i%64)<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for i := 0; i < b.N; i++ {
			if _, err := d.ReadAt(buf, int64(i%64)<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLockErrorNamesHolder: another umlkit's lock is an OFD lock, for which
// F_GETLK reports pid -1; the message names the holder from /proc/locks
// (this process here), or says "another process" when none is found.
func TestLockErrorNamesHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	holder, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := lockFile(holder, true); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = lockFile(f, false)
	want := fmt.Sprintf("F_SETLK failed, file already locked by pid %d: failed to lock '%s'", os.Getpid(), p)
	if err == nil || err.Error() != want || !errors.Is(err, ErrLocked) {
		t.Errorf("lockFile on a held file = %v; want %q", err, want)
	}
	if pid := lockHolder(filepath.Join(t.TempDir(), "no-locks"), f, false); pid != 0 {
		t.Errorf("lockHolder without /proc/locks = %d; want 0", pid)
	}
	le := &LockError{File: p}
	if want := "F_SETLK failed, file already locked by another process: failed to lock '" + p + "'"; le.Error() != want {
		t.Errorf("LockError{Pid: 0}.Error() = %q; want %q", le.Error(), want)
	}
}
