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

func init() {
	re := regexp.MustCompile(`IO write_ns=(\d+) read_ns=(\d+) find_ns=(\d+)`)
	metrics := func(out string) ([]Metric, error) {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("no IO line in:\n%s", out)
		}
		ns := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
		mb := 256.0
		return []Metric{
			{"write 256 MiB (conv=fsync)", mb / (ns(m[1]) / 1e9), "MB/s"},
			{"read 256 MiB", mb / (ns(m[2]) / 1e9), "MB/s"},
			{"find / (~20k entries)", ns(m[3]) / 1e6, "ms"},
		}, nil
	}
	guest := func(k string, env ...string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			img := e.Vars["io-"+k]
			fresh := img + ".run"
			if out, err := exec.Command("cp", "--sparse=always", img, fresh).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("cp: %v %s", err, out)
			}
			defer os.Remove(fresh)
			disk := fresh
			if k == "ours-cow" {
				// A new COW file over the (unchanged) copy.
				cow := img + ".cow"
				os.Remove(cow)
				defer os.Remove(cow)
				disk = cow + "," + fresh
			}
			kern := k
			if strings.HasPrefix(k, "ours") {
				kern = "ours"
			}
			argv := bootArgs(e, kern, disk)
			if kern == "real" {
				argv = append(argv, "rw")
			}
			old := os.Environ()
			for _, kv := range env {
				name, val, _ := strings.Cut(kv, "=")
				os.Setenv(name, val)
			}
			_, _, out, err := runGuest(argv, func(l string) bool { return strings.Contains(l, "IO write_ns") }, 5*time.Minute)
			os.Clearenv()
			for _, kv := range old {
				name, val, _ := strings.Cut(kv, "=")
				os.Setenv(name, val)
			}
			if err != nil {
				return nil, err
			}
			return metrics(out)
		}
	}
	host := func(e *Env) ([]Metric, error) {
		dir := filepath.Join(e.Dir, "hostio")
		script := strings.NewReplacer("/big", dir+"/big", "find / -xdev", "/bin/busybox find "+dir+"/tree", "T=/bench/benchtool", "T="+filepath.Join(e.Dir, "benchtool"), "dd if=", "/bin/busybox dd if=",
			"mount -o remount,rw / 2>/dev/null\n", "", "poweroff -f\n", "").Replace(ioScript)
		out, err := exec.Command("sh", "-c", script).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("host io: %v: %s", err, out)
		}
		return metrics(string(out))
	}
	register(&Benchmark{
		Name: "io",
		Doc:  "guest 256 MiB write/read and find / over ~20k entries: ours native, ours fuse2fs, ours on a COW (fuse2fs), linux.uml, host",
		Setup: func(e *Env) error {
			for _, k := range []string{"ours", "ours-fuse", "ours-cow", "real"} {
				img, err := guestImage(e, "io-"+k, ioScript)
				if err != nil {
					return err
				}
				// grow to 512 MiB with a 20k-entry tree, via debugfs-free route: rebuild
				tree := filepath.Join(e.Dir, "io-tree")
				if _, err := os.Stat(tree); err != nil {
					if err := makeTree(filepath.Join(tree, "tree")); err != nil {
						return err
					}
				}
				if err := addTreeToImage(e, img, tree); err != nil {
					return err
				}
				e.Vars["io-"+k] = img
			}
			hostDir := filepath.Join(e.Dir, "hostio")
			os.MkdirAll(hostDir, 0o755)
			return makeTree(filepath.Join(hostDir, "tree"))
		},
		Variants: []Variant{
			{Name: "ours", Run: guest("ours")},
			{Name: "ours-fuse2fs", Run: guest("ours-fuse", "UMLKIT_ROOT_FUSE=1")},
			{Name: "ours-cow", Run: guest("ours-cow")},
			{Name: "real", Run: guest("real")},
			{Name: "host", Run: host},
		},
	})
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
