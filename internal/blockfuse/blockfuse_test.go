//go:build linux

package blockfuse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
)

// memDisk is an in-memory Disk.
type memDisk struct {
	mu sync.Mutex
	b  []byte
}

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(p, m.b[off:]), nil
}

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.b[off:], p), nil
}

func (m *memDisk) bytes(off, n int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.b[off : off+n])
}

func (m *memDisk) Size() int64                { return int64(len(m.b)) }
func (m *memDisk) Flush() error               { return nil }
func (m *memDisk) ReadOnly() bool             { return false }
func (m *memDisk) Discard(off, n int64) error { return nil }

func TestAddRemove(t *testing.T) {
	testutil.RequireFUSE(t)
	dir := t.TempDir()
	a := &memDisk{b: bytes.Repeat([]byte("A"), 4096)}
	srv, err := Mount(dir, map[string]Disk{"ubda": a})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer srv.Close()

	b := &memDisk{b: bytes.Repeat([]byte("B"), 8192)}
	if err := srv.Add("ubdb", b); err != nil {
		t.Fatal(err)
	}
	if err := srv.Add("ubdb", b); err == nil {
		t.Errorf("second Add of ubdb succeeded")
	}
	got, err := os.ReadFile(filepath.Join(dir, "ubdb"))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("B"), 8192)) {
		t.Fatalf("read ubdb: %d bytes, %v", len(got), err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "ubdb"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Remove("ubdb"); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove of an open disk = %v, want ErrBusy", err)
	}
	if _, err := f.WriteAt([]byte("xy"), 10); err != nil || b.bytes(10, 2) != "xy" {
		t.Errorf("write through the export: %v, disk has %q", err, b.bytes(10, 2))
	}
	f.Close()
	// FUSE delivers RELEASE after close returns.
	if err := testutil.WaitFor(5*time.Second, func() bool { _, err := srv.Remove("ubdb"); return err == nil }); err != nil {
		t.Fatalf("Remove after close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ubdb")); !os.IsNotExist(err) {
		t.Errorf("ubdb still visible after Remove: %v", err)
	}
	if _, err := srv.Remove("ubdb"); !errors.Is(err, ErrNotExist) {
		t.Errorf("second Remove = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ubda")); err != nil {
		t.Errorf("ubda gone: %v", err)
	}
}

func TestCached(t *testing.T) {
	testutil.RequireFUSE(t)
	dir := t.TempDir()
	a := &memDisk{b: make([]byte, 1<<20)}
	srv, err := Mount(dir, map[string]Disk{"ubda": a})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer srv.Close()
	if _, err := srv.Cached("ubdz"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Cached of a missing disk = %v, want ErrNotExist", err)
	}
	p, err := srv.Cached("ubda")
	if err != nil || p != filepath.Join(dir, CachedName("ubda")) {
		t.Fatalf("Cached = %q, %v", p, err)
	}
	if q, err := srv.Cached("ubda"); err != nil || q != p {
		t.Errorf("second Cached = %q, %v; want the same name", q, err)
	}
	if st, err := os.Stat(p); err != nil || st.Size() != 1<<20 {
		t.Fatalf("stat cached name: %v, %v", st, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// One-block writes, as fuse2fs makes them; fsync hands them to the disk.
	blk := bytes.Repeat([]byte("c"), 4096)
	for off := int64(0); off < 256<<10; off += 4096 {
		if _, err := f.WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := a.bytes(0, 4); got != "cccc" || a.bytes(256<<10-4, 4) != "cccc" {
		t.Errorf("disk after fsync of the cached name: %q", got)
	}
	if _, err := srv.Remove("ubda"); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove while the cached name is open = %v, want ErrBusy", err)
	}
	// Data written at the last close reaches the disk too.
	if _, err := f.WriteAt([]byte("tail"), 512<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := a.bytes(512<<10, 4); got != "tail" {
		t.Errorf("disk after close of the cached name: %q", got)
	}
	// A new open of the cached name sees what the direct name wrote.
	d, err := os.OpenFile(filepath.Join(dir, "ubda"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt([]byte("dddd"), 0)
	d.Close()
	if b, err := os.ReadFile(p); err != nil || string(b[:4]) != "dddd" {
		t.Errorf("cached name after a direct write: %q, %v", b[:4], err)
	}
	if err := testutil.WaitFor(5*time.Second, func() bool { _, err := srv.Remove("ubda"); return err == nil }); err != nil {
		t.Fatalf("Remove after close: %v", err)
	}
	for _, n := range []string{"ubda", CachedName("ubda")} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s still visible after Remove: %v", n, err)
		}
	}
}
