package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memCgroup is the memory cgroup that enforces mem=. P creates it beside
// its own cgroup (v2: memory.max; v1: memory.limit_in_bytes), moves itself
// in before starting K (so every guest process is born inside, no race),
// and moves back and removes it at exit.
type memCgroup struct {
	dir  string // the new cgroup
	home string // P's original cgroup directory
	root string // the mount point of the hierarchy
	v2   bool
}

// newMemCgroup returns nil and a reason when no memory cgroup can be had.
func newMemCgroup(name string, limit uint64) (*memCgroup, error) {
	home, root, file, err := memCgroupHome()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(home, "umlkit-"+name)
	os.Remove(dir) // a stale one from a killed instance
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, errors.Unwrap(err))
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatUint(limit, 10)), 0o644); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("set %s: %w", file, errors.Unwrap(err))
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("join %s: %w", dir, errors.Unwrap(err))
	}
	return &memCgroup{dir: dir, home: home, root: root, v2: file == "memory.max"}, nil
}

// memCgroupHome finds this process's memory cgroup directory, the mount
// point of its hierarchy and the limit file's name: cgroup v2 (unified,
// with the memory controller) first, then v1.
func memCgroupHome() (dir, root, limitFile string, err error) {
	v2, v1 := selfCgroup("memory")
	if v2 != "" {
		if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "memory") {
			return filepath.Join("/sys/fs/cgroup", v2), "/sys/fs/cgroup", "memory.max", nil
		}
	}
	if v1 != "" {
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
			return filepath.Join("/sys/fs/cgroup/memory", v1), "/sys/fs/cgroup/memory", "memory.limit_in_bytes", nil
		}
	}
	return "", "", "", errors.New("no memory cgroup controller found")
}

// Close moves P back home and removes the cgroup (it is empty by then:
// the guest, K and fuse2fs are gone).
func (c *memCgroup) Close() {
	os.WriteFile(filepath.Join(c.home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	os.Remove(c.dir)
}

// selfCgroup reads /proc/self/cgroup: this process's cgroup v2 path ("0::"
// line) and its path in the v1 hierarchy of controller ("" when absent).
func selfCgroup(controller string) (v2, v1 string) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				v1 = parts[2]
			}
		}
	}
	return v2, v1
}
