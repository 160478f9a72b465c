//go:build linux

package blockfuse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/parttable"
	"github.com/umlkit/umlkit/internal/testutil"
)

const mib = 1 << 20

// partDisk is an 8 MiB disk with a DOS table: 1 at 1 MiB (1 MiB), an
// extended partition at 2 MiB (4 MiB) holding 5 (1 MiB at 2 MiB + 512) and
// 6 (2 MiB at 4 MiB); every sector is filled with a byte of its MiB.
func partDisk(t *testing.T) *memDisk {
	t.Helper()
	d := &memDisk{b: make([]byte, 8*mib)}
	for i := range d.b {
		d.b[i] = 'a' + byte(i/mib)
	}
	err := parttable.WriteDOS(d, 0x1234, [4]parttable.MBREntry{
		{Type: parttable.TypeLinux, Start: 2048, Sectors: 2048},
		{Type: parttable.TypeExtendedLBA, Start: 4096, Sectors: 8192},
	}, []parttable.MBREntry{
		{Type: parttable.TypeLinux, Start: 4097, Sectors: 2048},
		{Type: parttable.TypeLinux, Start: 8192, Sectors: 4096},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type scanLog struct {
	mu  sync.Mutex
	got []string
}

func (l *scanLog) hook(disk string, r ScanResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Log...)
	for _, p := range r.Removed {
		l.got = append(l.got, "-"+p.Name)
	}
	for _, p := range r.Added {
		l.got = append(l.got, "+"+p.Name)
	}
}

func (l *scanLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.got
	l.got = nil
	return g
}

func mountParts(t *testing.T, d *memDisk) (*Server, string, *scanLog) {
	t.Helper()
	testutil.RequireFUSE(t)
	dir := t.TempDir()
	srv, err := Mount(dir, map[string]Disk{"ubdb": d})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	l := &scanLog{}
	srv.EnablePartitions(l.hook)
	return srv, dir, l
}

// TestPartitionWindows: each partition file is its window of the disk
// and nothing outside it is read or written through it.
func TestPartitionWindows(t *testing.T) {
	d := partDisk(t)
	srv, dir, l := mountParts(t, d)
	if diff := cmp.Diff([]string{" ubdb: ubdb1 ubdb2 < ubdb5 ubdb6 >", "+ubdb1", "+ubdb2", "+ubdb5", "+ubdb6"}, l.take()); diff != "" {
		t.Errorf("boot scan (-want +got):\n%s", diff)
	}
	want := []Partition{
		{"ubdb1", 1, 1 * mib, 1 * mib}, {"ubdb2", 2, 2 * mib, 1024},
		{"ubdb5", 5, 2*mib + 512, 1 * mib}, {"ubdb6", 6, 4 * mib, 2 * mib},
	}
	if diff := cmp.Diff(want, srv.Partitions("ubdb")); diff != "" {
		t.Errorf("Partitions (-want +got):\n%s", diff)
	}
	for _, p := range want {
		st, err := os.Stat(filepath.Join(dir, p.Name))
		if err != nil || st.Size() != p.Size || st.Mode().Perm() != 0o660 {
			t.Errorf("stat %s: %v, %v", p.Name, st, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "ubdb6"))
	if err != nil || len(b) != 2*mib || b[0] != 'e' || b[len(b)-1] != 'f' {
		t.Fatalf("read ubdb6: %d bytes, %v", len(b), err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "ubdb1"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A write across the end of the partition stops at it (FUSE reports
	// ENOSPC for the whole call); one beyond it writes nothing.
	if n, err := f.WriteAt(bytes.Repeat([]byte("X"), 4096), mib-512); n > 512 || err == nil {
		t.Errorf("write across the end: %d, %v; want at most 512 and an error", n, err)
	}
	if n, err := f.WriteAt([]byte("Y"), mib+4096); n != 0 || err == nil {
		t.Errorf("write beyond the end: %d, %v", n, err)
	}
	f.Close()
	if got := d.bytes(2*mib-512, 512); got != string(bytes.Repeat([]byte("X"), 512)) {
		t.Errorf("the last sector of ubdb1 was not written")
	}
	if got := d.bytes(2*mib, 4); got != "\x00\x00\x00\x00" && got != "cccc" {
		t.Errorf("the sector after ubdb1 (the EBR) changed: %q", got)
	}
	if d.bytes(2*mib+1024, 4) != "cccc" {
		t.Errorf("ubdb5's data changed through ubdb1")
	}
	// Another disk's partition is none of this export's.
	if _, err := os.Stat(filepath.Join(dir, "ubda1")); !os.IsNotExist(err) {
		t.Errorf("ubda1 exists: %v", err)
	}
}

// TestRescan: a new table written through the whole disk appears when the
// writer closes it; BLKRRPART's Rescan is refused while a partition is
// open; a dropped partition's file is gone and a stale handle fails.
func TestRescan(t *testing.T) {
	d := partDisk(t)
	srv, dir, l := mountParts(t, d)
	l.take()
	disk, err := os.OpenFile(filepath.Join(dir, "ubdb"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Writing data elsewhere and closing: no change, no report.
	disk.WriteAt([]byte("data"), 7*mib)
	disk.Close()
	if got := l.take(); got != nil {
		t.Errorf("a write that left the table: %q", got)
	}
	// A GPT with two partitions.
	img := &memDisk{b: make([]byte, 8*mib)}
	linux := [16]byte{0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4}
	if err := parttable.WriteGPT(img, 8*mib/512, [16]byte{1}, []parttable.GPTEntry{
		{TypeGUID: linux, First: 2048, Last: 6143}, {TypeGUID: linux, First: 6144, Last: 8191},
	}); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(filepath.Join(dir, "ubdb5"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Rescan("ubdb"); !errors.Is(err, ErrBusy) {
		t.Errorf("Rescan with ubdb5 open = %v; want ErrBusy", err)
	}
	disk, err = os.OpenFile(filepath.Join(dir, "ubdb"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeRegions(t, disk, img)
	disk.Close()
	if got := l.take(); got != nil {
		t.Errorf("a table written while a partition is open was taken: %q", got)
	}
	old.Close()
	r, err := srv.Rescan("ubdb")
	if err != nil {
		t.Fatalf("Rescan after the close: %v", err)
	}
	if r.Kind != parttable.GPT {
		t.Errorf("Kind = %q", r.Kind)
	}
	if diff := cmp.Diff([]string{" ubdb: ubdb1 ubdb2", "-ubdb1", "-ubdb2", "-ubdb5", "-ubdb6", "+ubdb1", "+ubdb2"}, l.take()); diff != "" {
		t.Errorf("rescan (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "ubdb5")); !os.IsNotExist(err) {
		t.Errorf("ubdb5 after the rescan: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "ubdb1")); err != nil || st.Size() != 2*mib {
		t.Errorf("new ubdb1: %v, %v", st, err)
	}
	// Again through the close of a writer: back to DOS.
	disk, _ = os.OpenFile(filepath.Join(dir, "ubdb"), os.O_RDWR, 0)
	dos := partDisk(t)
	writeRegions(t, disk, dos)
	clear(dos.b[512:1024]) // no GPT header any more
	disk.WriteAt(dos.b[512:1024], 512)
	disk.Close()
	if diff := cmp.Diff([]string{" ubdb: ubdb1 ubdb2 < ubdb5 ubdb6 >", "-ubdb1", "-ubdb2", "+ubdb1", "+ubdb2", "+ubdb5", "+ubdb6"}, l.take()); diff != "" {
		t.Errorf("rescan at close (-want +got):\n%s", diff)
	}
	// A partition may not rescan; a name that is not there neither.
	if _, err := srv.Rescan("ubdb1"); !errors.Is(err, ErrNotPartitionable) {
		t.Errorf("Rescan of a partition = %v", err)
	}
	if _, err := srv.Rescan("ubdz"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Rescan of a missing disk = %v", err)
	}
}

// writeRegions copies the table sectors of src (the first 34 and the last
// 33) through f.
func writeRegions(t *testing.T, f *os.File, src *memDisk) {
	t.Helper()
	n := len(src.b)
	for _, r := range [][2]int{{0, 34 * 512}, {n - 33*512, n}, {4096 * 512, 4097 * 512}, {8191 * 512, 8192 * 512}} {
		if _, err := f.WriteAt(src.b[r[0]:r[1]], int64(r[0])); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPartitionMountedDisk: while the host kernel has the disk mounted
// (SetMounted), its partitions refuse writes too.
func TestPartitionMountedDisk(t *testing.T) {
	d := partDisk(t)
	srv, dir, _ := mountParts(t, d)
	if err := srv.SetMounted("ubdb", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.OpenFile(filepath.Join(dir, "ubdb5"), os.O_RDWR, 0); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("write open of a partition of a mounted disk = %v; want EBUSY", err)
	}
	if f, err := os.Open(filepath.Join(dir, "ubdb5")); err != nil {
		t.Errorf("read open: %v", err)
	} else {
		f.Close()
	}
}

// TestDevice: the ioctl view of exported files.
func TestDevice(t *testing.T) {
	d := partDisk(t)
	srv, dir, _ := mountParts(t, d)
	dev := func(name string) Device {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		x, ok := srv.Device(st.Dev, st.Ino)
		if !ok {
			t.Fatalf("Device(%s) not found", name)
		}
		return x
	}
	disk, p6 := dev("ubdb"), dev("ubdb6")
	if disk.Partition() || disk.Size() != 8*mib || disk.StartSector() != 0 {
		t.Errorf("disk: %v %d %d", disk.Partition(), disk.Size(), disk.StartSector())
	}
	if !p6.Partition() || p6.Size() != 2*mib || p6.StartSector() != 8192 || p6.DiskSize() != 8*mib || p6.Name() != "ubdb6" {
		t.Errorf("ubdb6: %v %d %d %d", p6.Partition(), p6.Size(), p6.StartSector(), p6.DiskSize())
	}
	if _, ok := srv.Device(1, 1); ok {
		t.Error("Device of a foreign file found")
	}
	if err := p6.ZeroOut(mib, 4096); err != nil {
		t.Fatal(err)
	}
	if d.bytes(5*mib, 4096) != string(make([]byte, 4096)) || d.bytes(5*mib+4096, 1) != "f" || d.bytes(5*mib-1, 1) != "e" {
		t.Error("ZeroOut of ubdb6 did not zero exactly its range")
	}
	for _, r := range [][2]int64{{2 * mib, 512}, {2*mib - 512, 1024}, {-512, 512}} {
		if err := p6.ZeroOut(r[0], r[1]); err != syscall.EINVAL {
			t.Errorf("ZeroOut(%d, %d) outside ubdb6 = %v; want EINVAL", r[0], r[1], err)
		}
		if err := p6.Discard(r[0], r[1]); err != syscall.EINVAL {
			t.Errorf("Discard(%d, %d) outside ubdb6 = %v; want EINVAL", r[0], r[1], err)
		}
	}
	if _, err := p6.Rescan(); !errors.Is(err, ErrNotPartitionable) {
		t.Errorf("Rescan of a partition = %v", err)
	}
	srv.SetMounted("ubdb", true)
	if err := p6.ZeroOut(0, 512); err != syscall.EBUSY {
		t.Errorf("ZeroOut on a mounted disk's partition = %v; want EBUSY", err)
	}
}

// TestRemoveWithPartitions: Remove refuses a disk one of whose partitions
// is open, and takes its partitions with it.
func TestRemoveWithPartitions(t *testing.T) {
	d := partDisk(t)
	srv, dir, _ := mountParts(t, d)
	f, err := os.Open(filepath.Join(dir, "ubdb6"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Remove("ubdb"); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove with ubdb6 open = %v; want ErrBusy", err)
	}
	if _, err := srv.Remove("ubdb6"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Remove of a partition = %v; want ErrNotExist", err)
	}
	f.Close()
	var parts []Partition
	if err := testutil.WaitFor(5*time.Second, func() bool { parts, err = srv.Remove("ubdb"); return err == nil }); err != nil {
		t.Fatalf("Remove after close: %v", err)
	}
	if len(parts) != 4 {
		t.Errorf("Remove returned %v", parts)
	}
	for _, n := range []string{"ubdb", "ubdb1", "ubdb6"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s after Remove: %v", n, err)
		}
	}
}
