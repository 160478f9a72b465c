package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// hostfs: inside the guest, mount a host directory with hostfs and run
// `find` over its ~20k entries, read a 128 MiB file and write 64 MiB
// (conv=fsync) — ours (a bind of the host directory) against linux.uml's
// hostfs, the same busybox tools on both. Both guests read the same host
// files, so the host's page cache serves the reads alike.
const hostfsScript = `T=/bench/benchtool
mkdir -p /mnt/h
mount none /mnt/h -t hostfs -o HOSTDIR
t0=$($T now); find /mnt/h/tree | wc -l >/dev/null; t1=$($T now)
dd if=/mnt/h/big of=/dev/null bs=1M 2>/dev/null; t2=$($T now)
dd if=/dev/zero of=/mnt/h/out-KERNEL bs=1M count=64 conv=fsync 2>/dev/null; t3=$($T now)
echo "HOSTFS find_ns=$((t1-t0)) read_ns=$((t2-t1)) write_ns=$((t3-t2))"
rm -f /mnt/h/out-KERNEL
umount /mnt/h
poweroff -f
`

// hostfsDir is the host directory the guests mount.
func hostfsDir(e *Env) string { return filepath.Join(e.Dir, "hostfs-dir") }

// makeHostfsDir fills the host directory: a ~20k-entry tree and a 128 MiB
// file of random bytes.
func makeHostfsDir(e *Env) error {
	dir := hostfsDir(e)
	if _, err := os.Stat(filepath.Join(dir, "big")); err != nil {
		if err := makeTree(filepath.Join(dir, "tree")); err != nil {
			return err
		}
		if out, err := exec.Command("dd", "if=/dev/urandom", "of="+filepath.Join(dir, "big"), "bs=1M", "count=128").CombinedOutput(); err != nil {
			return fmt.Errorf("dd: %v: %s", err, out)
		}
	}
	return nil
}

// hostfsScriptFor is hostfsScript for the kernel's guest.
func hostfsScriptFor(e *Env, kernel string) string {
	return strings.NewReplacer("HOSTDIR", hostfsDir(e), "KERNEL", kernel).Replace(hostfsScript)
}
