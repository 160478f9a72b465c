package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/cgroup"
	"github.com/umlkit/umlkit/internal/sys"
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
	dir, err := makeMachineCgroup(home, name)
	if err != nil {
		return nil, err
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
	self, err := cgroup.Self()
	if err != nil {
		return "", "", "", err
	}
	if mnt, err := cgroup.V2Mount(); err == nil && self.V2 != "" {
		if b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers")); err == nil && strings.Contains(string(b), "memory") {
			return filepath.Join(mnt, self.V2), mnt, "memory.max", nil
		}
	}
	if mnt, err := cgroup.V1Mount("memory"); err == nil && self.V1["memory"] != "" {
		return filepath.Join(mnt, self.V1["memory"]), mnt, "memory.limit_in_bytes", nil
	}
	return "", "", "", errors.New("no memory cgroup controller found")
}

// Close moves P back home and removes the cgroup, depth first: a guest's
// init that manages cgroups may have made its own below it on a v1
// hierarchy (the guest, K and fuse2fs are gone by then).
func (c *memCgroup) Close() {
	os.WriteFile(filepath.Join(c.home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	sys.RmdirTree(c.dir)
}
