package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// io: 256 MiB sequential write (dd conv=fsync) and read back, and a `find /`
// over ~20k entries, inside the guest: ours (native root, as root), ours
// through fuse2fs (the unprivileged path, forced with UMLKIT_ROOT_FUSE=1),
// ours on a fresh COW file over the image (fuse2fs on the ubd driver's
// export), linux.uml, and the same commands on the host. Guest caches are not
// dropped (a user-namespace guest may not), so reads come from the page
// cache in every variant alike. The host reference runs the same busybox
// tools (dd, find) as the guests.
const ioScript = `T=/bench/benchtool
mount -o remount,rw / 2>/dev/null
t0=$($T now); dd if=/dev/zero of=/big bs=1M count=256 conv=fsync 2>/dev/null; t1=$($T now)
dd if=/big of=/dev/null bs=1M 2>/dev/null; t2=$($T now)
find / -xdev | wc -l >/dev/null; t3=$($T now)
echo "IO write_ns=$((t1-t0)) read_ns=$((t2-t1)) find_ns=$((t3-t2))"
rm -f /big; sync
poweroff -f
`

// addIOTree grows img to 512 MiB with the ~20k-entry tree (made on first
// use) added.
func addIOTree(e *Env, img string) error {
	tree := filepath.Join(e.Dir, "io-tree")
	if _, err := os.Stat(tree); err != nil {
		if err := makeTree(filepath.Join(tree, "tree")); err != nil {
			return err
		}
	}
	return addTreeToImage(e, img, tree)
}

// makeHostIOTree makes the tree the host's find walks.
func makeHostIOTree(e *Env) error {
	hostDir := filepath.Join(e.Dir, "hostio")
	os.MkdirAll(hostDir, 0o755)
	return makeTree(filepath.Join(hostDir, "tree"))
}

// ioOnHost runs ioScript on the host, in a directory of its own.
func ioOnHost(e *Env) (string, error) {
	dir := filepath.Join(e.Dir, "hostio")
	script := strings.NewReplacer("/big", dir+"/big", "find / -xdev", "/bin/busybox find "+dir+"/tree", "T=/bench/benchtool", "T="+filepath.Join(e.Dir, "benchtool"), "dd if=", "/bin/busybox dd if=",
		"mount -o remount,rw / 2>/dev/null\n", "", "poweroff -f\n", "").Replace(ioScript)
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("host io: %v: %s", err, out)
	}
	return string(out), nil
}

// makeTree creates 200 directories of 100 files.
func makeTree(dir string) error {
	for i := 0; i < 200; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for j := 0; j < 100; j++ {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", j)), nil, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// addTreeToImage rebuilds img as a 512 MiB image holding its own files plus
// the tree (mke2fs -d takes one directory, so both are merged first).
func addTreeToImage(e *Env, img, tree string) error {
	mnt := filepath.Join(e.Dir, "io-extract")
	os.RemoveAll(mnt)
	os.MkdirAll(mnt, 0o755)
	if out, err := exec.Command("debugfs", "-R", "rdump / "+mnt, img).CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs rdump: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(tree, "tree"), mnt+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("cp tree: %v: %s", err, out)
	}
	os.Remove(img)
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", mnt, img, "512M").CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs: %v: %s", err, out)
	}
	return os.RemoveAll(mnt)
}
