package e2e

import (
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// fuse2fsRootScript exercises the fuse2fs root (long name cache timeouts,
// auto_cache; for a COW root also the page-cached export of the disk):
// data, sizes and link counts seen right after each change, also through a
// second hard link (auto_cache sees a change made in a later second than
// the file's last open: fuse2fs stores whole-second times), and everything
// must be on the disk after the halt. The second boot reads it all back
// from a cold cache.
const fuse2fsRootScript = `if [ -e /data.md5 ]; then
  md5sum -c /data.md5 >/dev/null && echo SECOND-MD5-OK
  echo "SECOND $(ls /t | wc -l) $(cat /t/g2) $(stat -c %s,%h /s)"
  poweroff -f
fi
dd if=/dev/urandom of=/data bs=64k count=160 2>/dev/null
md5sum /data >/data.md5
md5sum -c /data.md5 >/dev/null && echo FIRST-MD5-OK
mkdir /t; i=0; while [ $i -lt 200 ]; do echo $i >/t/f$i; i=$((i+1)); done
rm /t/f1*
mv /t/f2 /t/g2; [ -e /t/f2 ] || echo MOVED
echo abc >/s; echo defg >>/s; echo "SIZE $(stat -c %s,%h /s)"
ln /s /s2; echo "LINK $(stat -c %s,%h /s)"
rm /s2; echo "UNLINK $(stat -c %s,%h /s)"
echo aaaa >/h; ln /h /h2; cat /h >/dev/null; sleep 1; echo bbbb >/h2; echo "HARD $(cat /h)"
echo "COUNT $(ls /t | wc -l) $(cat /t/g2)"
sync; echo FIRST-DONE; reboot -f
`

func checkFuse2fsRoot(t *testing.T, g *harness.Guest, image string) {
	t.Helper()
	if code, err := g.Wait(2 * bootTimeout); err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, g.Output())
	}
	for _, want := range []string{"FIRST-MD5-OK", "MOVED", "SIZE 9,1", "LINK 9,2", "UNLINK 9,1",
		"HARD bbbb", "COUNT 89 2", "FIRST-DONE", "SECOND-MD5-OK", "SECOND 89 2 9,1"} {
		if !strings.Contains(g.Output(), want) {
			t.Errorf("guest output lacks %q:\n%s", want, g.Output())
		}
	}
	if out, err := exec.Command("e2fsck", "-fn", image).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn after the guest: %v\n%s", err, out)
	}
	data, err := exec.Command("debugfs", "-R", "cat /data", image).Output()
	if err != nil || len(data) != 160*64<<10 {
		t.Fatalf("debugfs cat /data: %d bytes, %v", len(data), err)
	}
	sum, _ := exec.Command("debugfs", "-R", "cat /data.md5", image).Output()
	if want := fmt.Sprintf("%x", md5.Sum(data)); !strings.HasPrefix(string(sum), want) {
		t.Errorf("/data on the host has md5 %s, the guest wrote %q", want, sum)
	}
}

// TestIntegrationLinuxFuse2fsRootUnprivileged: an ordinary user's root is
// fuse2fs on the image file.
func TestIntegrationLinuxFuse2fsRootUnprivileged(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	home := u.Dir(t)
	img := harness.BusyboxImage(t, home, harness.Image{Init: fuse2fsRootScript, SizeMB: 64})
	u.Chown(t, img)
	g := harness.StartAs(t, u, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+filepath.Join(home, "uml"))
	checkFuse2fsRoot(t, g, img)
}

// TestIntegrationLinuxFuse2fsRootCOW: a COW root is fuse2fs on the page-cached
// export of the ubd disk; the merged image must hold every change.
func TestIntegrationLinuxFuse2fsRootCOW(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	moo := testutil.Peer(t, "uml_moo", "uml-utilities")
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{Init: fuse2fsRootScript, SizeMB: 64})
	cow := filepath.Join(dir, "root.cow")
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+cow+","+img, "init=/init", "uml_dir="+t.TempDir())
	if code, err := g.Wait(2 * bootTimeout); err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, g.Output())
	}
	merged := filepath.Join(dir, "merged.img")
	if out, err := exec.Command(moo, cow, merged).CombinedOutput(); err != nil {
		t.Fatalf("uml_moo: %v\n%s", err, out)
	}
	checkFuse2fsRoot(t, g, merged)
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("backing file no longer clean: %v\n%s", err, out)
	}
	os.Remove(merged)
}
