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
	if err := srv.Remove("ubdb"); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove of an open disk = %v, want ErrBusy", err)
	}
	if _, err := f.WriteAt([]byte("xy"), 10); err != nil || b.bytes(10, 2) != "xy" {
		t.Errorf("write through the export: %v, disk has %q", err, b.bytes(10, 2))
	}
	f.Close()
	// FUSE delivers RELEASE after close returns.
	if err := testutil.WaitFor(5*time.Second, func() bool { return srv.Remove("ubdb") == nil }); err != nil {
		t.Fatalf("Remove after close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ubdb")); !os.IsNotExist(err) {
		t.Errorf("ubdb still visible after Remove: %v", err)
	}
	if err := srv.Remove("ubdb"); !errors.Is(err, ErrNotExist) {
		t.Errorf("second Remove = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ubda")); err != nil {
		t.Errorf("ubda gone: %v", err)
	}
}
