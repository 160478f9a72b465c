package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
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

func init() {
	re := regexp.MustCompile(`HOSTFS find_ns=(\d+) read_ns=(\d+) write_ns=(\d+)`)
	run := func(k string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			img := e.Vars["hostfs-"+k]
			fresh := img + ".run"
			if out, err := exec.Command("cp", "--sparse=always", img, fresh).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("cp: %v %s", err, out)
			}
			defer os.Remove(fresh)
			argv := bootArgs(e, k, fresh)
			_, _, out, err := runGuest(argv, func(l string) bool { return strings.Contains(l, "HOSTFS find_ns") }, 5*time.Minute)
			if err != nil {
				return nil, err
			}
			m := re.FindStringSubmatch(out)
			if m == nil {
				return nil, fmt.Errorf("no HOSTFS line in:\n%s", out)
			}
			ns := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
			return []Metric{
				{"find over hostfs (~20k entries)", ns(m[1]) / 1e6, "ms"},
				{"read 128 MiB from hostfs", 128 / (ns(m[2]) / 1e9), "MB/s"},
				{"write 64 MiB to hostfs (conv=fsync)", 64 / (ns(m[3]) / 1e9), "MB/s"},
			}, nil
		}
	}
	register(&Benchmark{
		Name: "hostfs",
		Doc:  "guest find/read/write on a hostfs mount of a host directory: ours (bind) vs linux.uml's hostfs",
		Setup: func(e *Env) error {
			dir := filepath.Join(e.Dir, "hostfs-dir")
			if _, err := os.Stat(filepath.Join(dir, "big")); err != nil {
				if err := makeTree(filepath.Join(dir, "tree")); err != nil {
					return err
				}
				if out, err := exec.Command("dd", "if=/dev/urandom", "of="+filepath.Join(dir, "big"), "bs=1M", "count=128").CombinedOutput(); err != nil {
					return fmt.Errorf("dd: %v: %s", err, out)
				}
			}
			for _, k := range []string{"ours", "real"} {
				script := strings.NewReplacer("HOSTDIR", dir, "KERNEL", k).Replace(hostfsScript)
				img, err := guestImage(e, "hostfs-"+k, script)
				if err != nil {
					return err
				}
				e.Vars["hostfs-"+k] = img
			}
			return nil
		},
		Variants: []Variant{
			{Name: "ours", Run: run("ours")},
			{Name: "real", Run: run("real")},
		},
	})
}
