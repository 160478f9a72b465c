package mkrootfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
)

func TestBusyboxImage(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testutil.Skip(t, "busybox-static not installed")
	}
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	img := filepath.Join(t.TempDir(), "root.img")
	if err := Make(context.Background(), Options{Image: img, SizeMB: 32}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /etc/inittab", img).Output()
	if err != nil || !strings.Contains(string(out), "tty0::respawn:-/bin/sh") {
		t.Errorf("inittab in image = %q, %v", out, err)
	}
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck: %v\n%s", err, out)
	}
	// exists: refused without Force, nothing changed
	st, _ := os.Stat(img)
	err = Make(context.Background(), Options{Image: img})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Make over an existing image = %v; want 'already exists'", err)
	}
	if st2, _ := os.Stat(img); st2.ModTime() != st.ModTime() {
		t.Errorf("existing image was modified")
	}
	ents, _ := os.ReadDir(filepath.Dir(img))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
