//go:build linux

package blockfuse

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
)

// permRun is an export mounted for the permission tests, in a directory
// every user may traverse.
type permRun struct {
	t    *testing.T
	srv  *Server
	dir  string
	disk *memDisk
}

func newPermRun(t *testing.T, kernelCheck bool) *permRun {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	base, err := os.MkdirTemp("", "blockfuse-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &permRun{t: t, dir: dir, disk: &memDisk{b: bytes.Repeat([]byte("D"), 64<<10)}}
	if r.srv, err = mount(dir, map[string]Disk{"ubda": r.disk}, kernelCheck); err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *permRun) path(name string) string { return filepath.Join(r.dir, name) }

// result is a command's combined output and whether it succeeded.
type result struct {
	out string
	ok  bool
}

// as runs argv with the given uid, gid and supplementary groups.
func (r *permRun) as(uid, gid uint32, groups []uint32, argv ...string) result {
	r.t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	return result{string(out), err == nil}
}

// read and write try dd on name; they report success.
func (r *permRun) read(name string, uid, gid uint32, groups ...uint32) result {
	return r.as(uid, gid, groups, "dd", "if="+r.path(name), "of=/dev/null", "bs=512", "count=1")
}

func (r *permRun) write(name string, uid, gid uint32, groups ...uint32) result {
	return r.as(uid, gid, groups, "dd", "if=/dev/zero", "of="+r.path(name), "bs=512", "count=1", "conv=notrunc")
}

func (r *permRun) refused(what string, res result) {
	r.t.Helper()
	if res.ok || !strings.Contains(res.out, "Permission denied") {
		r.t.Errorf("%s: succeeded or failed otherwise (success %v): %s", what, res.ok, res.out)
	}
}

func (r *permRun) allowed(what string, res result) {
	r.t.Helper()
	if !res.ok {
		r.t.Errorf("%s: refused: %s", what, res.out)
	}
}

func (r *permRun) stat(name string) (uid, gid, mode uint32) {
	r.t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(r.path(name), &st); err != nil {
		r.t.Fatal(err)
	}
	return st.Uid, st.Gid, st.Mode &^ syscall.S_IFMT
}

// TestIntegrationPermissions checks the export's owner, group and mode
// and who may open, chmod and chown — with the kernel's check
// (default_permissions, as Mount does) and with the server's own alone.
func TestIntegrationPermissions(t *testing.T) {
	for _, kernelCheck := range []bool{true, false} {
		name := "kernel"
		if !kernelCheck {
			name = "server-only"
		}
		t.Run(name, func(t *testing.T) { testPermissions(t, newPermRun(t, kernelCheck)) })
	}
}

func testPermissions(t *testing.T, r *permRun) {
	if uid, gid, mode := r.stat("ubda"); uid != 0 || gid != DiskGID || mode != 0o660 {
		t.Errorf("ubda is %d:%d %#o; want 0:%d 0660", uid, gid, mode, DiskGID)
	}
	r.refused("read by an ordinary user", r.read("ubda", 1000, 1000))
	r.refused("write by an ordinary user", r.write("ubda", 1000, 1000))
	if got := r.disk.bytes(0, 4); got != "DDDD" {
		t.Errorf("a refused write changed the disk: %q", got)
	}
	r.refused("read+write open by an ordinary user", r.as(1000, 1000, nil, "sh", "-c", "exec 3<>"+r.path("ubda")))
	r.allowed("read by a member of disk", r.read("ubda", 1000, 1000, 24, DiskGID))
	r.allowed("write by a member of disk", r.write("ubda", 1000, 1000, DiskGID))
	r.allowed("read with gid disk", r.read("ubda", 1000, DiskGID))
	r.allowed("read by root", r.read("ubda", 0, 0))

	// The Cached name has the disk's attributes.
	cached, err := r.srv.Cached("ubda")
	if err != nil {
		t.Fatal(err)
	}
	r.refused("read of the cached name by an ordinary user", r.read(filepath.Base(cached), 1000, 1000))

	// chmod and chown by others fail, and change nothing.
	if res := r.as(1000, 1000, nil, "chmod", "666", r.path("ubda")); res.ok {
		t.Errorf("chmod by an ordinary user succeeded: %s", res.out)
	}
	if res := r.as(1000, DiskGID, nil, "chown", "1000", r.path("ubda")); res.ok {
		t.Errorf("chown by a member of disk succeeded: %s", res.out)
	}
	if a, _ := r.srv.Attr("ubda"); a != DefaultAttr {
		t.Errorf("attributes after refused changes = %+v; want %+v", a, DefaultAttr)
	}

	// chmod by root applies to the open check at once, on both names.
	if err := os.Chmod(r.path("ubda"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, mode := r.stat("ubda"); mode != 0o600 {
		t.Errorf("mode after chmod 600 = %#o", mode)
	}
	r.refused("read by a member of disk after chmod 600", r.read("ubda", 1000, 1000, DiskGID))
	r.refused("cached name after chmod 600", r.read(filepath.Base(cached), 1000, 1000, DiskGID))

	// chown by root: the new owner may, and may chmod; others still not.
	if err := os.Chown(r.path("ubda"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if uid, gid, _ := r.stat("ubda"); uid != 1000 || gid != 1000 {
		t.Errorf("owner after chown 1000:1000 = %d:%d", uid, gid)
	}
	r.allowed("write by the new owner", r.write("ubda", 1000, 1000))
	r.allowed("chmod by the new owner", r.as(1000, 1000, nil, "chmod", "640", r.path("ubda")))
	if res := r.as(1000, 1000, nil, "chown", "2000", r.path("ubda")); res.ok {
		t.Errorf("the owner gave the disk away: %s", res.out)
	}
	r.refused("write by the group after chmod 640", r.write("ubda", 2000, 1000))
	r.allowed("read by the group after chmod 640", r.read("ubda", 2000, 1000))
	if res := r.as(2000, 1000, nil, "chmod", "666", r.path("ubda")); res.ok {
		t.Errorf("chmod by a group member succeeded: %s", res.out)
	}

	// Root's capabilities pass any mode, as on a device node.
	if err := os.Chmod(r.path("ubda"), 0); err != nil {
		t.Fatal(err)
	}
	r.allowed("read by root of a 000 file", r.read("ubda", 0, 0))
	r.refused("read by the owner of a 000 file", r.read("ubda", 1000, 1000))

	// SetAttr: the export's caller sets attributes.
	if err := r.srv.SetAttr("ubda", Attr{Uid: 0, Gid: DiskGID, Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	r.allowed("read by a member of disk after SetAttr 640", r.read("ubda", 1000, 1000, DiskGID))
	r.refused("write by a member of disk after SetAttr 640", r.write("ubda", 1000, 1000, DiskGID))
	if err := r.srv.SetAttr("nosuch", DefaultAttr); err != ErrNotExist {
		t.Errorf("SetAttr of a missing name = %v; want ErrNotExist", err)
	}

	// A disk added later starts with the default attributes.
	if err := r.srv.Add("ubdb", &memDisk{b: make([]byte, 4096)}); err != nil {
		t.Fatal(err)
	}
	r.refused("read of a hot-plugged disk by an ordinary user", r.read("ubdb", 1000, 1000))
	r.allowed("read of a hot-plugged disk by a member of disk", r.read("ubdb", 1000, 1000, DiskGID))
}
