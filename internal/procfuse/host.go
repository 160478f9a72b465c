//go:build linux

package procfuse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/procview"
)

// ReadHost reads a host file (a /proc, /sys or cgroup file) of at most
// procview.MaxInput bytes.
func ReadHost(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, procview.MaxInput+1))
	if err != nil {
		return nil, err
	}
	if len(b) > procview.MaxInput {
		return nil, fmt.Errorf("%s: %w", path, procview.ErrTooLong)
	}
	return b, nil
}

// MemCgroup is the machine's memory cgroup.
type MemCgroup struct {
	Dir  string // its directory
	Root string // the mount point of its hierarchy: the walk up stops below it
	V2   bool   // cgroup v2 (memory.max); else v1 (memory.limit_in_bytes)
}

// maxDepth bounds the walk from the machine's cgroup up.
const maxDepth = 64

// Read returns the limits and usage of the cgroup and of its ancestors
// below Root (the machine's first), and the cgroup's memory.stat with v2
// names. An error means the machine's own cgroup could not be read.
func (c MemCgroup) Read() ([]procview.CgroupLevel, map[string]uint64, error) {
	var levels []procview.CgroupLevel
	dir := filepath.Clean(c.Dir)
	root := filepath.Clean(c.Root)
	for i := 0; i < maxDepth && dir != root && strings.HasPrefix(dir, root+"/"); i++ {
		l, err := c.level(dir)
		if err != nil {
			if i == 0 {
				return nil, nil, err
			}
			break
		}
		levels = append(levels, l)
		dir = filepath.Dir(dir)
	}
	if len(levels) == 0 {
		return nil, nil, fmt.Errorf("memory cgroup %s is not below %s", c.Dir, c.Root)
	}
	b, err := ReadHost(filepath.Join(c.Dir, "memory.stat"))
	if err != nil {
		return nil, nil, err
	}
	stat, err := procview.ParseFlatKeyed(b)
	if err != nil {
		return nil, nil, err
	}
	if !c.V2 {
		stat = procview.V1Stat(stat)
	}
	return levels, stat, nil
}

// level reads one cgroup's limits and usage.
func (c MemCgroup) level(dir string) (procview.CgroupLevel, error) {
	limitFile, usageFile, swapLimitFile, swapUsageFile := "memory.max", "memory.current", "memory.swap.max", "memory.swap.current"
	if !c.V2 {
		limitFile, usageFile, swapLimitFile, swapUsageFile = "memory.limit_in_bytes", "memory.usage_in_bytes", "memory.memsw.limit_in_bytes", "memory.memsw.usage_in_bytes"
	}
	read := func(name string, parse func([]byte) (uint64, error)) (uint64, error) {
		b, err := ReadHost(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		return parse(b)
	}
	var l procview.CgroupLevel
	var err1, err2 error
	l.Limit, err1 = read(limitFile, procview.ParseLimit)
	l.Usage, err2 = read(usageFile, procview.ParseCounter)
	if err := errors.Join(err1, err2); err != nil {
		return l, err
	}
	sl, err1 := read(swapLimitFile, procview.ParseLimit)
	su, err2 := read(swapUsageFile, procview.ParseCounter)
	if err1 != nil || err2 != nil {
		return l, nil // no swap accounting
	}
	l.Swap = true
	if c.V2 {
		l.SwapLimit, l.SwapUsage = sl, su
		return l, nil
	}
	// v1 counts memory and swap together (memsw).
	l.SwapUsage = su - min(su, l.Usage)
	switch {
	case sl == procview.Unlimited:
		l.SwapLimit = procview.Unlimited
	case l.Limit == procview.Unlimited:
		l.SwapLimit = sl
	default:
		l.SwapLimit = sl - min(sl, l.Limit)
	}
	return l, nil
}

// Affinity returns the CPUs this process may run on (its cpuset and
// sched_setaffinity together).
func Affinity() (procview.CPUSet, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, os.NewSyscallError("sched_getaffinity", err)
	}
	s := procview.CPUSet{}
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			s[i] = true
		}
	}
	return s, nil
}

// OnlineCPUs returns the host's online CPUs.
func OnlineCPUs() (procview.CPUSet, error) {
	b, err := ReadHost("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return procview.ParseCPUList(b)
}
