//go:build linux

package ubd

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/cow"
	"github.com/umlkit/umlkit/internal/testutil"
)

// dirtyCOW makes a COW over a fresh backing and writes some runs through
// Disk; it returns the COW, the backing and the expected merged image.
func dirtyCOW(t *testing.T, dir string, size int) (string, string, []byte) {
	t.Helper()
	back, data := newBacking(t, dir, size)
	c := filepath.Join(dir, "m.cow")
	d, err := Open(Options{File: c, Backing: back})
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, d.Size())
	copy(model, data)
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 40; i++ {
		off := rng.Int63n(d.Size()) / 512 * 512
		p := make([]byte, min(int64(rng.Intn(64)+1)*512, d.Size()-off))
		if i%5 != 0 {
			rng.Read(p) // every 5th write is zeros
		}
		d.WriteAt(p, off)
		copy(model[off:], p)
	}
	d.Close()
	return c, back, model[:int64(size)/512*512]
}

func TestMergeNew(t *testing.T) {
	dir := t.TempDir()
	c, back, want := dirtyCOW(t, dir, 3<<20+700)
	out := filepath.Join(dir, "merged.img")
	var calls int
	var last [2]int64
	err := Merge(context.Background(), MergeOptions{COW: c, Output: out, Progress: func(done, total int64) { calls++; last = [2]int64{done, total} }})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, want) {
		t.Fatalf("merged image differs (len %d, want %d)", len(got), len(want))
	}
	if calls < 2 || last[0] != last[1] || last[1] != int64(len(want)) {
		t.Errorf("progress: %d calls, last %v; want done == total == %d", calls, last, len(want))
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o644&^umask() {
		t.Errorf("output mode %v", st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("directory has %d entries; want backing, cow, output", len(ents))
	}
	if b, _ := os.ReadFile(back); int64(len(b)) != 3<<20+700 {
		t.Error("backing file changed")
	}
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestMergeKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	back := filepath.Join(dir, "sparse.img")
	f, _ := os.Create(back)
	f.Truncate(16 << 20)
	f.WriteAt([]byte("start"), 0)
	f.Close()
	c := filepath.Join(dir, "s.cow")
	d, err := Open(Options{File: c, Backing: back})
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt(bytes.Repeat([]byte{9}, 4096), 8<<20)
	d.Close()
	out := filepath.Join(dir, "out")
	if err := Merge(context.Background(), MergeOptions{COW: c, Output: out}); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	syscall.Stat(out, &st)
	if st.Size != 16<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("merged sparse image: size %d, allocated %d; want 16 MiB with < 1 MiB allocated", st.Size, st.Blocks*512)
	}
	b, _ := os.ReadFile(out)
	if string(b[:5]) != "start" || b[8<<20] != 9 || b[8<<20+4096] != 0 {
		t.Error("merged sparse image has wrong contents")
	}
}

func TestMergeInPlaceAndResume(t *testing.T) {
	dir := t.TempDir()
	c, back, want := dirtyCOW(t, dir, 2<<20)
	// Simulate a crash after the journal was written and part of the data
	// copied: the backing file's mtime has changed.
	h := headerOf(t, c)
	if err := writeJournal(back, c, h); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(back, time.Now(), time.Now())
	if err := Merge(context.Background(), MergeOptions{COW: c, InPlace: true}); err != nil {
		t.Fatalf("resumed -d merge: %v", err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, want) {
		t.Fatal("in-place merge result differs")
	}
	if _, err := os.Stat(journalPath(back)); !errors.Is(err, os.ErrNotExist) {
		t.Error("journal left behind")
	}
	// Without a journal the changed mtime is an error, as in the real tool.
	err := Merge(context.Background(), MergeOptions{COW: c, InPlace: true})
	if !errors.Is(err, cow.ErrMtimeMismatch) {
		t.Errorf("second -d merge = %v; want mtime mismatch", err)
	}
}

func headerOf(t *testing.T, c string) *cow.Header {
	t.Helper()
	f, h, err := ReadHeader(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return h
}

func TestMergeBadInput(t *testing.T) {
	dir := t.TempDir()
	c, back, _ := dirtyCOW(t, dir, 1<<20)
	out := filepath.Join(dir, "out")
	check := func(name string, o MergeOptions, want string) {
		t.Helper()
		err := Merge(context.Background(), o)
		if err == nil || err.Error() != want {
			t.Errorf("%s: Merge = %v; want %q", name, err, want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: output left behind", name)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("%s: temporary file %s left behind", name, e.Name())
			}
		}
	}
	check("missing COW", MergeOptions{COW: filepath.Join(dir, "nope"), Output: out}, "COW file open: No such file or directory")
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, make([]byte, 5000), 0o644)
	check("not a COW", MergeOptions{COW: plain, Output: out}, "Reading COW header failed")
	check("missing backing", MergeOptions{COW: c, Backing: filepath.Join(dir, "nob"), Output: out}, "Stating backing file: No such file or directory")
	check("missing out dir", MergeOptions{COW: c, Output: filepath.Join(dir, "no", "out")}, "Output file open: No such file or directory")
	trunc := filepath.Join(dir, "trunc.cow")
	raw, _ := os.ReadFile(c)
	os.WriteFile(trunc, raw[:8192+10], 0o644)
	check("truncated bitmap", MergeOptions{COW: trunc, Output: out}, "Reading COW bitmap: COW bitmap is truncated")
	short := filepath.Join(dir, "short.cow")
	os.WriteFile(short, raw[:100], 0o644)
	var notice bytes.Buffer
	check("truncated header", MergeOptions{COW: short, Output: out, Notice: &notice}, "Reading COW header failed")
	if notice.String() != "read_cow_header - failed to read V3 header\n" {
		t.Errorf("notice = %q", notice.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Merge(ctx, MergeOptions{COW: c, Output: out}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Merge = %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("cancelled merge left output")
	}
	_ = back
}

// legacyCOW writes a COW file of the given layout by hand: header, bitmap
// with the given sectors dirty, their data at DataOffset.
func legacyCOW(t *testing.T, path string, h *cow.Header, dirty map[int64][]byte) {
	t.Helper()
	raw, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteAt(raw, 0)
	bm := make([]byte, h.BitmapLen())
	for s, data := range dirty {
		cow.SetDirty(bm, s)
		f.WriteAt(data, h.DataOffset()+s*int64(h.SectorSize))
	}
	f.WriteAt(bm, h.BitmapOffset())
	f.Truncate(h.DataOffset() + int64(h.Size))
}

func TestLegacyLayouts(t *testing.T) {
	dir := t.TempDir()
	back, data := newBacking(t, dir, 51200)
	dirty := map[int64][]byte{0: bytes.Repeat([]byte{0xA1}, 512), 17: bytes.Repeat([]byte{0xB2}, 512), 95: bytes.Repeat([]byte{0xC3}, 512)}
	want := append([]byte(nil), data...)
	for s, b := range dirty {
		copy(want[s*512:], b)
	}
	for _, h := range []cow.Header{
		{Version: 1, BackingFile: back, Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 512},
		{Version: 2, BackingFile: back, Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 512},
		{Version: 3, Broken: true, BackingFile: back, Mtime: 1700000000, Size: 51200, SectorSize: 512, Alignment: 4096},
	} {
		name := filepath.Join(dir, "legacy.cow")
		legacyCOW(t, name, &h, dirty)
		d, err := Open(Options{File: name})
		if err != nil {
			t.Fatalf("v%d broken=%v: Open: %v", h.Version, h.Broken, err)
		}
		if got := readAll(t, d); !bytes.Equal(got, want) {
			t.Errorf("v%d broken=%v: Disk reads wrong data", h.Version, h.Broken)
		}
		d.Close()
		out := filepath.Join(dir, "legacy.out")
		var notice bytes.Buffer
		if err := Merge(context.Background(), MergeOptions{COW: name, Output: out, Notice: &notice}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Errorf("v%d broken=%v: merge wrong", h.Version, h.Broken)
		}
		if h.Broken != (notice.String() == cow.BrokenMessage+"\n") {
			t.Errorf("v%d broken=%v: notice %q", h.Version, h.Broken, notice.String())
		}
	}
}

func TestReadInfo(t *testing.T) {
	dir := t.TempDir()
	back, _ := newBacking(t, dir, 51200)
	c := filepath.Join(dir, "i.cow")
	d, _ := Open(Options{File: c, Backing: back})
	d.WriteAt(make([]byte, 4096), 0)
	d.Close()
	in, err := ReadInfo(c, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.DirtySectors != 8 || in.DataOffset != 12288 || in.BitmapLen != 13 || in.BackingStatus != "ok" || in.Sectors != 100 {
		t.Errorf("ReadInfo = %+v", in)
	}
}

func TestMergeOutputSymlinkAndDevice(t *testing.T) {
	dir := t.TempDir()
	c, _, want := dirtyCOW(t, dir, 256<<10)
	target := filepath.Join(dir, "target.img")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(dir, "link.img")
	os.Symlink("target.img", link)
	if err := Merge(context.Background(), MergeOptions{COW: c, Output: link}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, want) {
		t.Error("the symlink's target does not hold the merge")
	}
	// A character device is written in place (and not replaced): a null
	// device node of our own, so a regression cannot touch /dev/null.
	null := filepath.Join(dir, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		testutil.Skip(t, "mknod of a device node (needs root): %v", err)
	}
	if err := Merge(context.Background(), MergeOptions{COW: c, Output: null}); err != nil {
		t.Fatalf("merge to a null device: %v", err)
	}
	if fi, err := os.Stat(null); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatal("the device node was replaced")
	}
}

// TestMergeRemovesStaleTemps: a killed run's temporary files for the same
// output (and, with -d, for the journal) are removed by the next run; a
// live run's (flock held) and other names are kept.
func TestMergeRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	c, back, want := dirtyCOW(t, dir, 1<<20)
	out := filepath.Join(dir, "out")
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("left over"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(".out.tmp-0123456789ab")
	live := mk(".out.tmp-abcdef012345")
	lk, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	others := []string{mk(".out.tmp-notours"), mk(".other.tmp-0123456789ab"), mk(".out.tmp-0123456789AB"), mk("out.tmp-0123456789ab")}
	if err := Merge(context.Background(), MergeOptions{COW: c, Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("merged image differs")
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary %s not removed (%v)", stale, err)
	}
	for _, p := range append(others, live) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed; want kept (%v)", p, err)
		}
	}

	jstale := filepath.Join(dir, "."+filepath.Base(journalPath(back))+".tmp-00112233aabb") // ..backing.img.uml_moo-d.tmp-*
	os.WriteFile(jstale, nil, 0o644)
	if err := Merge(context.Background(), MergeOptions{COW: c, InPlace: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(jstale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale journal temporary %s not removed (%v)", jstale, err)
	}
}

// TestNewLockedTempIsHeld: while a run's temporary file exists it is
// flock-held, so a concurrent run's cleanup keeps it.
func TestNewLockedTempIsHeld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img")
	af, release, err := newLockedTemp(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	tmp := af.TempPath()
	removeStaleTemps(p)
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("live temporary removed: %v", err)
	}
	if err := af.Commit(); err != nil {
		t.Fatal(err)
	}
	release()
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

// TestMergeNewAfterCrashedInPlace: after a -d run died part way (journal
// present, backing mtime changed), a new-file merge of the same COW file
// goes on instead of refusing the mtime: the backing file changed only in
// sectors the COW file holds.
func TestMergeNewAfterCrashedInPlace(t *testing.T) {
	dir := t.TempDir()
	c, back, want := dirtyCOW(t, dir, 1<<20)
	if err := writeJournal(back, c, headerOf(t, c)); err != nil {
		t.Fatal(err)
	}
	// Part of the merge happened: the first dirty run is in the backing file.
	cf, h, _ := ReadHeader(c, nil)
	bm, _ := readBitmap(cf, h)
	for s := int64(0); s < h.Sectors(); s++ {
		if cow.Dirty(bm, s) {
			b := make([]byte, 512)
			cf.ReadAt(b, h.DataOffset()+s*512)
			bf, _ := os.OpenFile(back, os.O_WRONLY, 0)
			bf.WriteAt(b, s*512)
			bf.Close()
			break
		}
	}
	cf.Close()
	os.Chtimes(back, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	out := filepath.Join(dir, "out")
	if err := Merge(context.Background(), MergeOptions{COW: c, Output: out}); err != nil {
		t.Fatalf("new-file merge after a crashed -d: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("merged image differs")
	}
	if err := Merge(context.Background(), MergeOptions{COW: c, InPlace: true}); err != nil {
		t.Fatalf("resumed -d: %v", err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, want) {
		t.Error("in-place result differs")
	}
}
