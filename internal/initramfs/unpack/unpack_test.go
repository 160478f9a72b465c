//go:build linux

package unpack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/initramfs"
	"github.com/umlkit/umlkit/internal/testutil"
)

func unpackInto(t *testing.T, dir string, img []byte) ([]string, error) {
	t.Helper()
	root, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var logs []string
	err = Unpack(root, bytes.NewReader(img), int64(len(img)), Options{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	return logs, err
}

func ent(mode uint32, name, data string) []byte {
	return initramfs.AppendEntry(nil, initramfs.Header{Mode: mode, NLink: 1, MTime: 1000}, name, []byte(data))
}

func archive(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, e...)
	}
	return initramfs.AppendTrailer(b)
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

func TestUnpackGolden(t *testing.T) {
	for _, name := range []string{"gnu-newc.cpio", "gnu-newc.cpio.zst"} {
		dir := t.TempDir()
		logs, err := unpackInto(t, dir, golden(t, name))
		if err != nil || len(logs) != 0 {
			t.Fatalf("%s: Unpack = %v (logs %q)", name, err, logs)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "hard")); err != nil || string(b) != "hello\n" {
			t.Errorf("hard = %q, %v", b, err)
		}
		f, h := lstat(t, filepath.Join(dir, "dir/file")), lstat(t, filepath.Join(dir, "hard"))
		if f.Ino != h.Ino || f.Nlink != 2 {
			t.Errorf("dir/file and hard: inodes %d, %d, %d links; want one inode, 2 links", f.Ino, h.Ino, f.Nlink)
		}
		if f.Mtim.Sec != 1700000000 {
			t.Errorf("dir/file mtime = %d; want 1700000000", f.Mtim.Sec)
		}
		if d := lstat(t, filepath.Join(dir, "dir")); d.Mtim.Sec != 1700000000 {
			t.Errorf("dir mtime = %d; want 1700000000 (set after its members)", d.Mtim.Sec)
		}
		if b := lstat(t, filepath.Join(dir, "dir/sub/big")); b.Mode != unix.S_IFREG|0o4755 || b.Size != 1000 {
			t.Errorf("dir/sub/big: mode %o size %d; want setuid 4755, 1000 bytes", b.Mode, b.Size)
		}
		if l, err := os.Readlink(filepath.Join(dir, "link")); err != nil || l != "dir/file" {
			t.Errorf("link -> %q, %v", l, err)
		}
		if p := lstat(t, filepath.Join(dir, "fifo")); p.Mode&unix.S_IFMT != unix.S_IFIFO || p.Mode&0o7777 != 0o644 {
			t.Errorf("fifo mode %o", p.Mode)
		}
	}
}

// Nothing in an image reaches outside the directory: "..", absolute names
// and symlinks (to absolute or relative places outside) all resolve inside
// it, as they resolve inside Linux's rootfs.
func TestUnpackStaysInside(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "root")
	outside := filepath.Join(top, "outside")
	os.Mkdir(dir, 0o755)
	os.Mkdir(outside, 0o755)
	img := archive(
		ent(initramfs.TypeRegular|0o644, "../../escape", "1"),
		ent(initramfs.TypeRegular|0o644, "/abs", "2"),
		ent(initramfs.TypeSymlink|0o777, "up", "../../.."),
		ent(initramfs.TypeRegular|0o644, "up/viaup", "3"),
		ent(initramfs.TypeSymlink|0o777, "out", outside),
		ent(initramfs.TypeRegular|0o644, "out/viaabs", "4"),
		ent(initramfs.TypeSymlink|0o777, "in", "/inside"),
		ent(initramfs.TypeDir|0o755, "inside", ""),
		ent(initramfs.TypeRegular|0o644, "in/viaabs2", "5"),
		ent(initramfs.TypeSymlink|0o777, "last", outside+"/victim"),
		ent(initramfs.TypeRegular|0o644, "last", "6"), // replaces the symlink, never writes through it
		ent(initramfs.TypeDir|0o700, ".", ""),         // the root's own mode
		ent(initramfs.TypeDir|0o755, "a", ""),
		ent(initramfs.TypeDir|0o755, "a/b", ""),
		ent(initramfs.TypeRegular|0o644, "a/b/../../../dotdot", "7"),
	)
	if _, err := unpackInto(t, dir, img); err != nil {
		t.Fatalf("Unpack = %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("files made outside the directory: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(top, "escape")); err == nil {
		t.Error("../../escape made outside")
	}
	for p, want := range map[string]string{"escape": "1", "abs": "2", "viaup": "3", "dotdot": "7", "last": "6",
		"inside/viaabs2": "5"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if st := lstat(t, filepath.Join(dir, "last")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("last is mode %o; want a regular file", st.Mode)
	}
	if st := lstat(t, dir); st.Mode&0o7777 != 0o700 {
		t.Errorf("root mode %o; want 700 (the archive's \".\")", st.Mode&0o7777)
	}
}

// Later members replace earlier ones of another type, as in Linux; device
// nodes are not made and are named in one line.
func TestUnpackReplaceAndDevices(t *testing.T) {
	dir := t.TempDir()
	img := append(archive(
		ent(initramfs.TypeDir|0o755, "fd", ""),
		ent(initramfs.TypeRegular|0o644, "df", "file"),
		ent(initramfs.TypeSymlink|0o777, "l", "one"),
		ent(initramfs.TypeRegular|0o644, "f", "long old content"),
	), archive(
		ent(initramfs.TypeRegular|0o644, "fd", "now a file"),
		ent(initramfs.TypeDir|0o700, "df", ""),
		ent(initramfs.TypeSymlink|0o777, "l", "two"),
		ent(initramfs.TypeRegular|0o644, "f", "new"),
		initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeChar | 0o600, NLink: 1, RDevMajor: 5, RDevMinor: 1}, "dev/console", nil),
		initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeBlock | 0o660, NLink: 1, RDevMajor: 8}, "sda", nil),
	)...)
	logs, err := unpackInto(t, dir, img)
	if err != nil {
		t.Fatalf("Unpack = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "fd")); string(b) != "now a file" {
		t.Errorf("fd = %q", b)
	}
	if st := lstat(t, filepath.Join(dir, "df")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("df mode %o; want a directory", st.Mode)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "l")); l != "two" {
		t.Errorf("l -> %q; want two", l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "new" {
		t.Errorf("f = %q; want new (truncated)", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sda")); err == nil {
		t.Error("block device node made")
	}
	want := "initramfs: 2 device nodes not made (a user namespace cannot make them; the machine's /dev has its devices): dev/console sda"
	if len(logs) != 1 || logs[0] != want {
		t.Errorf("logs = %q; want [%q]", logs, want)
	}
}

// Owners are kept: run as root (of the host here, of the guest's user
// namespace in linux).
func TestIntegrationUnpackOwners(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	img := archive(
		initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeRegular | 0o4755, NLink: 1, UID: 1000, GID: 1001}, "suid", []byte("x")),
		initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeDir | 0o555, NLink: 1, UID: 5, GID: 6, MTime: 12345}, "odir", nil),
		ent(initramfs.TypeRegular|0o600, "odir/f", "y"),
		initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeSymlink | 0o777, NLink: 1, UID: 7, GID: 8}, "sl", []byte("t")),
	)
	if _, err := unpackInto(t, dir, img); err != nil {
		t.Fatalf("Unpack = %v", err)
	}
	for p, want := range map[string][3]uint32{"suid": {1000, 1001, unix.S_IFREG | 0o4755}, "odir": {5, 6, unix.S_IFDIR | 0o555}, "sl": {7, 8, unix.S_IFLNK | 0o777}} {
		st := lstat(t, filepath.Join(dir, p))
		if st.Uid != want[0] || st.Gid != want[1] || st.Mode != want[2] {
			t.Errorf("%s: %d:%d mode %o; want %d:%d %o", p, st.Uid, st.Gid, st.Mode, want[0], want[1], want[2])
		}
	}
	if st := lstat(t, filepath.Join(dir, "odir")); st.Mtim.Sec != 12345 {
		t.Errorf("odir mtime %d; want 12345", st.Mtim.Sec)
	}
}

// A full rootfs stops the unpacking with Linux's "write error".
func TestIntegrationUnpackFull(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	img := archive(ent(initramfs.TypeRegular|0o644, "big", strings.Repeat("x", 256<<10)), ent(initramfs.TypeRegular|0o644, "after", "x"))
	_, err := unpackInto(t, dir, img)
	if !errors.Is(err, initramfs.ErrWrite) {
		t.Errorf("Unpack into a full tmpfs = %v; want %v", err, initramfs.ErrWrite)
	}
	if _, err := os.Stat(filepath.Join(dir, "after")); err == nil {
		t.Error("members after the write error were made")
	}
}
