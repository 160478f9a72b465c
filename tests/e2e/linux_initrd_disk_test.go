package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// partitionInit is the initramfs's /init of TestIntegrationLinuxInitrdPartitions:
// it partitions the blank second disk with util-linux's sfdisk, makes an
// ext4 on its first partition with e2fsprogs' mke2fs, writes a file there,
// and switches root into the first disk, as an installer's or image
// builder's initramfs does. (@MKE2FS@ is the host's mke2fs by its path:
// busybox's shell would run its own mke2fs applet for a bare name.)
const partitionInit = `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
printf 'label: dos\n,32M,L\n,,L\n' | sfdisk -q /dev/ubdb || { echo SFDISK-FAILED; poweroff -f; }
[ -e /dev/ubdb1 ] && [ -e /dev/ubdb2 ] && echo PARTITIONS-APPEARED
@MKE2FS@ -q -t ext4 -L built /dev/ubdb1 || { echo MKE2FS-FAILED; poweroff -f; }
mkdir -p /p && mount /dev/ubdb1 /p || { echo MOUNT-P1-FAILED; poweroff -f; }
echo made-in-initramfs > /p/file && umount /p && echo P1-WRITTEN
mount /dev/ubda /newroot || { echo MOUNT-ROOT-FAILED; poweroff -f; }
for d in dev proc; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /init
`

// copyWithLibs copies host binaries and the shared libraries ldd names
// for them into tree, at the same paths.
func copyWithLibs(t *testing.T, tree string, bins ...string) {
	t.Helper()
	files := map[string]bool{}
	for _, b := range bins {
		files[b] = true
		out, err := exec.Command("ldd", b).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", b, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					files[f] = true
				}
			}
		}
	}
	for f := range files {
		dst := filepath.Join(tree, f)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if out, err := exec.Command("cp", "-L", f, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", f, err, out)
		}
	}
}

// partitionInitrd builds the initramfs: busybox, sfdisk and mke2fs with
// their libraries, gzip-compressed newc.
func partitionInitrd(t *testing.T, dir string) string {
	t.Helper()
	cpio := testutil.Peer(t, "cpio", "cpio")
	sfdisk := testutil.Peer(t, "sfdisk", "fdisk")
	mke2fs := testutil.Peer(t, "mke2fs", "e2fsprogs")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testutil.Skip(t, "static busybox not installed (apt-get install busybox-static)")
	}
	tree := filepath.Join(dir, "ptree")
	for _, d := range []string{"bin", "sbin", "dev", "proc", "sys", "newroot", "etc"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	copyWithLibs(t, tree, sfdisk, mke2fs)
	for _, b := range []string{sfdisk, mke2fs} { // reachable on PATH whatever the host's layout
		os.Symlink(b, filepath.Join(tree, "sbin", filepath.Base(b)))
	}
	if out, err := exec.Command("cp", "/bin/busybox", filepath.Join(tree, "bin/busybox")).CombinedOutput(); err != nil {
		t.Fatalf("cp busybox: %v %s", err, out)
	}
	for _, a := range []string{"sh", "mount", "umount", "mkdir", "switch_root", "echo", "printf", "poweroff"} {
		os.Symlink("busybox", filepath.Join(tree, "bin", a))
	}
	if err := os.WriteFile(filepath.Join(tree, "init"), []byte(strings.ReplaceAll(partitionInit, "@MKE2FS@", mke2fs)), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "partition.cpio.gz")
	cmd := exec.Command("sh", "-c", `cd "$1" && find . | "$2" -o -H newc --quiet | gzip -n > "$3" && chmod 644 "$3"`, "sh", tree, cpio, img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make initramfs: %v\n%s", err, out)
	}
	return img
}

// TestIntegrationLinuxInitrdPartitions is issue 16's second "done when":
// an initramfs made by the test partitions a second disk with sfdisk,
// makes an ext4 on partition 1, mounts it, writes, unmounts and
// switch_roots into another disk; the host then checks the partition with
// e2fsck -fn and debugfs. As root and as an ordinary user.
func TestIntegrationLinuxInitrdPartitions(t *testing.T) {
	requireLinuxHost(t)
	testutil.Peer(t, "debugfs", "e2fsprogs")
	for _, unpriv := range []bool{false, true} {
		name := map[bool]string{false: "root", true: "user"}[unpriv]
		t.Run(name, func(t *testing.T) {
			var u *harness.TestUser
			dir := t.TempDir()
			if unpriv {
				u = harness.UnprivilegedUser(t)
				requireLinuxHostAs(t, u)
				dir = u.Dir(t)
			}
			initrd := partitionInitrd(t, dir)
			root := harness.BusyboxImage(t, dir, harness.Image{Init: "echo SWITCHED-INTO-UBDA\n[ -e /dev/ubdb1 ] && echo SEES-UBDB1\npoweroff -f\n"})
			blank := filepath.Join(dir, "blank.img")
			if err := os.WriteFile(blank, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(blank, 64<<20); err != nil {
				t.Fatal(err)
			}
			argv := []string{harness.Bin(t, "linux"), "initrd=" + initrd, "ubd0=" + root, "ubd1=" + blank,
				"uml_dir=" + filepath.Join(dir, "uml"), "con=null", "con0=fd:0,fd:1"}
			var g *harness.Guest
			if u != nil {
				u.Chown(t, root)
				u.Chown(t, blank)
				g = harness.StartAs(t, u, argv...)
			} else {
				g = harness.Start(t, nil, argv...)
			}
			code, err := g.Wait(bootTimeout)
			out := g.Output()
			if err != nil || code != 0 {
				t.Fatalf("exit %d, %v\n%s", code, err, out)
			}
			for _, want := range []string{"PARTITIONS-APPEARED", "P1-WRITTEN", "SWITCHED-INTO-UBDA", "SEES-UBDB1"} {
				if !strings.Contains(out, want) {
					t.Errorf("console lacks %q\n%s", want, out)
				}
			}
			// Partition 1 starts at sector 2048 (sfdisk's default alignment) and is 32 MiB.
			p1 := filepath.Join(t.TempDir(), "p1.img")
			if b, err := exec.Command("dd", "if="+blank, "of="+p1, "bs=1M", "skip=1", "count=32").CombinedOutput(); err != nil {
				t.Fatalf("dd: %v %s", err, b)
			}
			if got := checkImage(t, p1, "/file"); got != "made-in-initramfs\n" {
				t.Errorf("/file on partition 1 reads %q on the host", got)
			}
			if b, _ := exec.Command("debugfs", "-R", "stats", p1).Output(); !strings.Contains(string(b), "Filesystem volume name:   built") {
				t.Errorf("partition 1's file system is not the one mke2fs made in the guest")
			}
		})
	}
}
