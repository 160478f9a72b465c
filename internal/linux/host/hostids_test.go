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
// nodes owned by the block's root; a closed block is free again. It uses
// the real /run/umlkit: its locks are what keeps the test's blocks apart
// from machines running meanwhile (a block taken elsewhere would have its
// processes killed as strays).
func TestIntegrationIDBlocks(t *testing.T) {
	testutil.RequireRoot(t)
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
	// Whole blocks apart (not always adjacent: machines running meanwhile
	// take blocks too).
	if d := b.uid - a.uid; d%idBlockSize != 0 {
		t.Errorf("blocks %d apart; want a multiple of %d", d, idBlockSize)
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
	lock := a.lock.Name()
	a.Close()
	if _, err := os.Stat(a.dir); err == nil {
		t.Errorf("%s left behind", a.dir)
	}
	// Free again: its lock can be taken (another machine may take the
	// block itself at any moment, so the test does not allocate it).
	f, err := os.Open(lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil && err != unix.EWOULDBLOCK {
		t.Errorf("lock of the freed block: %v", err)
	}
	f.Close()
	b.Close()
}
