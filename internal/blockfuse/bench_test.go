//go:build linux

package blockfuse

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
)

// fileDisk is a Disk on a host file.
type fileDisk struct{ *os.File }

func (f fileDisk) Size() int64 {
	st, _ := f.Stat()
	return st.Size()
}
func (f fileDisk) Flush() error               { return f.Sync() }
func (f fileDisk) ReadOnly() bool             { return false }
func (f fileDisk) Discard(off, n int64) error { return nil }

// benchBlocks writes then reads 64 MiB in 4 KiB blocks (fuse2fs's pattern)
// through the direct or the cached name.
func benchBlocks(b *testing.B, cached bool) {
	testutil.RequireFUSE(b)
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "img"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 64 << 20
	f.Truncate(size)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	srv, err := Mount(mnt, map[string]Disk{"ubda": fileDisk{f}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	path := filepath.Join(mnt, "ubda")
	if cached {
		if path, err = srv.Cached("ubda"); err != nil {
			b.Fatal(err)
		}
	}
	blk := make([]byte, 4096)
	b.SetBytes(2 * size)
	for i := 0; i < b.N; i++ {
		g, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += 4096 {
			if _, err := g.WriteAt(blk, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := g.Sync(); err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += 4096 {
			if _, err := g.ReadAt(blk, off); err != nil {
				b.Fatal(err)
			}
		}
		g.Close()
	}
}

func BenchmarkBlocksDirect(b *testing.B) { benchBlocks(b, false) }
func BenchmarkBlocksCached(b *testing.B) { benchBlocks(b, true) }
