package e2e

// One-line errors for bad disks (issue 19): a file that is not an ext2/3/4
// image, as root and as an ordinary user, and a disk another linux holds.

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// checkNotExt checks a failed boot's output for the one-line refusal.
func checkNotExt(t *testing.T, g *harness.Guest, file string) {
	t.Helper()
	if code, err := g.Wait(bootTimeout); err != nil || code == 0 {
		t.Errorf("linux exit = %d, %v; want a failure", code, err)
	}
	out := g.Output()
	want := `VFS: Cannot open root device "` + file + `": not an ext2/3/4 file system (no ext2 superblock); give a disk image made with uml_mkrootfs or mkfs.ext4`
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	for _, bad := range []string{"e2fsck", "superblock could not be read", "cannot allocate memory", "Please run"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q:\n%s", bad, out)
		}
	}
}

func junkImage(t *testing.T, dir string) string {
	t.Helper()
	b := make([]byte, 8<<20)
	rand.Read(b)
	p := filepath.Join(dir, "junk.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntegrationLinuxNotExtImage(t *testing.T) {
	t.Run("root", func(t *testing.T) {
		testutil.RequireRoot(t)
		requireLinuxHost(t)
		for _, f := range []string{junkImage(t, t.TempDir()), "/etc/shadow"} {
			checkNotExt(t, harness.BootLinux(t, f), f)
		}
	})
	t.Run("user", func(t *testing.T) {
		u := harness.UnprivilegedUser(t)
		requireLinuxHostAs(t, u)
		home := u.Dir(t)
		img := junkImage(t, home)
		u.Chown(t, img)
		checkNotExt(t, harness.StartAs(t, u, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+filepath.Join(home, "uml")), img)
	})
}

// TestIntegrationLinuxDiskInUse: a second linux on a disk the first one
// holds names the holder's pid where it can see it, else "another process"
// (the first one's lock is an OFD lock taken in its own pid namespace), never
// "pid -1".
func TestIntegrationLinuxDiskInUse(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo HOLDER-UP\nsleep 60\npoweroff -f"})
	a := harness.BootLinux(t, img)
	if err := a.WaitOutput("HOLDER-UP", bootTimeout); err != nil {
		t.Fatal(err)
	}
	defer a.Cmd.Process.Kill()
	b := harness.BootLinux(t, img)
	b.Wait(bootTimeout)
	out := b.Output()
	if !regexp.MustCompile(`file already locked by (pid [1-9][0-9]*|another process)`).MatchString(out) || strings.Contains(out, "pid -1") {
		t.Errorf("second linux on a held disk:\n%s\nwant the holder's pid or \"another process\"", out)
	}
}
