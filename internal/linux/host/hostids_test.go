package host

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

// TestIntegrationIDBlocks: concurrent machines get distinct blocks of
// unprivileged ids, never 0, with their directory and private device
// nodes owned by the block's root; a closed block is reused.
func TestIntegrationIDBlocks(t *testing.T) {
	testutil.RequireRoot(t)
	old := idStateDir
	idStateDir = filepath.Join(t.TempDir(), "umlkit")
	t.Cleanup(func() { idStateDir = old })
	a, err := allocIDs()
	if err != nil {
		t.Fatal(err)
	}
	b, err := allocIDs()
	if err != nil {
		t.Fatal(err)
	}
	if a.uid == b.uid || a.uid == 0 || b.uid == 0 || a.uid < 65536 {
		t.Fatalf("blocks %d and %d", a.uid, b.uid)
	}
	if d := b.uid - a.uid; d != idBlockSize && d != -idBlockSize {
		t.Errorf("blocks %d apart; want %d", d, idBlockSize)
	}
	for _, p := range []string{a.dir, a.work, filepath.Join(a.dev, "fuse")} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != a.uid || int(st.Gid) != a.gid {
			t.Errorf("%s owned by %d:%d; want %d:%d", p, st.Uid, st.Gid, a.uid, a.gid)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(a.dev, "fuse"), &st); err == nil && (st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(10, 229)) {
		t.Errorf("private fuse node: mode %o rdev %x", st.Mode, st.Rdev)
	}
	slot := a.slot
	a.Close()
	if _, err := os.Stat(a.dir); err == nil {
		t.Errorf("%s left behind", a.dir)
	}
	c, err := allocIDs()
	if err != nil {
		t.Fatal(err)
	}
	if c.slot != slot {
		t.Errorf("freed block %d not reused (got %d)", slot, c.slot)
	}
	c.Close()
	b.Close()
}
