package kside

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/procfuse"
	"github.com/umlkit/umlkit/internal/procview"
)

// The machine's own /proc views (docs/linux.md, "The machine's /proc
// views"): K serves them through internal/procfuse and G binds them over
// the guest's files. The guest's clocks start at its boot because G runs
// in a time namespace of its own whose offsets are the boot instant
// (startInTimeNS); the views count from the same instant.

// procViews is what the views of one boot share.
type procViews struct {
	srv   *procfuse.Server
	paths map[string]string // guest path below the root -> host path
	clock procview.Clock    // BootOffset: the boot on the host's CLOCK_BOOTTIME
	mono  int64             // the boot on the host's CLOCK_MONOTONIC, seconds
	// timens: the guest runs in its own time namespace (so its btime is
	// the host's plus clock.BootOffset); set once G has started.
	timens atomic.Bool
	online procview.CPUSet // the host's online CPUs at boot
	logf   func(format string, args ...any)
}

// guest paths of the views
const (
	viewCmdline  = "proc/cmdline"
	viewUptime   = "proc/uptime"
	viewBootID   = "proc/sys/kernel/random/boot_id"
	viewMeminfo  = "proc/meminfo"
	viewSwaps    = "proc/swaps"
	viewCPUInfo  = "proc/cpuinfo"
	viewStat     = "proc/stat"
	viewCPUOnOff = "sys/devices/system/cpu/online"
)

// startProcViews takes the boot instant and mounts the views in dir/proc.
// Where FUSE cannot be mounted the guest keeps the host's files.
func (k *kernel) startProcViews(dir string) (func(), error) {
	v := &procViews{logf: k.logf}
	var bt, mt unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt); err != nil {
		return nil, os.NewSyscallError("clock_gettime", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mt); err != nil {
		return nil, os.NewSyscallError("clock_gettime", err)
	}
	v.clock.BootOffset, v.mono = uint64(bt.Sec), mt.Sec
	if b, err := procfuse.ReadHost("/proc/uptime"); err == nil {
		if u, err := procview.ParseUptime(b); err == nil {
			v.clock.Idle = u.Idle
		}
	}
	v.online, _ = procfuse.OnlineCPUs()
	allowed, _ := procfuse.Affinity()
	limited := v.online != nil && allowed != nil && procview.Narrower(allowed, v.online)

	var id [16]byte
	rand.Read(id[:])
	files := []procfuse.File{
		{Name: "cmdline", Static: true, Render: func() []byte { return procview.Cmdline(k.plan.Cmdline) }},
		{Name: "boot_id", Static: true, Render: func() []byte { return procview.BootID(id) }},
		{Name: "uptime", Render: v.hostView("/proc/uptime", func(b []byte) ([]byte, error) {
			c := v.clock
			c.CPUs, c.HostCPUs = v.cpus()
			return procview.RenderUptime(b, c)
		})},
	}
	guest := map[string]string{viewCmdline: "cmdline", viewBootID: "boot_id", viewUptime: "uptime"}
	if k.plan.Mem != 0 {
		files = append(files,
			procfuse.File{Name: "meminfo", Render: v.hostView("/proc/meminfo", func(b []byte) ([]byte, error) {
				return procview.RenderMeminfo(b, k.memory())
			})},
			procfuse.File{Name: "swaps", Render: v.hostView("/proc/swaps", func(b []byte) ([]byte, error) {
				mi, err := procfuse.ReadHost("/proc/meminfo")
				if err != nil {
					return nil, err
				}
				return procview.RenderSwaps(b, mi, k.memory())
			})})
		guest[viewMeminfo], guest[viewSwaps] = "meminfo", "swaps"
	}
	if limited {
		files = append(files,
			procfuse.File{Name: "cpuinfo", Render: v.hostView("/proc/cpuinfo", func(b []byte) ([]byte, error) {
				return procview.RenderCPUInfo(b, v.allowed())
			})},
			procfuse.File{Name: "stat", Render: v.hostView("/proc/stat", func(b []byte) ([]byte, error) {
				var shift uint64
				if v.timens.Load() {
					shift = v.clock.BootOffset
				}
				return procview.RenderStat(b, v.allowed(), shift)
			})},
			procfuse.File{Name: "online", Render: func() []byte { return procview.RenderCPUList(v.allowed(), v.online) }})
		guest[viewCPUInfo], guest[viewStat], guest[viewCPUOnOff] = "cpuinfo", "stat", "online"
	}
	pdir := filepath.Join(dir, "proc")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		return nil, err
	}
	k.views = v
	srv, err := procfuse.Mount(pdir, files)
	if err != nil {
		// The guest boots with the host's files (and its own clocks).
		k.logf("procview: %v: the guest's /proc shows the host's files", err)
		return func() { k.views = nil }, nil
	}
	v.srv = srv
	v.paths = map[string]string{}
	for g, name := range guest {
		v.paths[g] = srv.Path(name)
	}
	return func() {
		if err := srv.Close(); err != nil {
			k.logf("procview: unmount %s: %v", pdir, err)
		}
		k.views = nil
	}, nil
}

// hostView returns a view's render: the host file at path through render,
// or the host's text as it is when render cannot make sense of it (logged
// once), or an empty text when the host file cannot be read.
func (v *procViews) hostView(path string, render func([]byte) ([]byte, error)) func() []byte {
	var once sync.Once
	return func() []byte {
		b, err := procfuse.ReadHost(path)
		if err != nil {
			return nil
		}
		out, err := render(b)
		if err != nil {
			once.Do(func() { v.logf("procview: %s: %v; the guest sees the host's", path, err) })
			return b
		}
		return out
	}
}

// allowed returns the CPUs the machine may use now (K's affinity, which
// a cpuset of the machine's cgroup narrows too), among the online ones.
func (v *procViews) allowed() procview.CPUSet {
	a, err := procfuse.Affinity()
	if err != nil || v.online == nil {
		return nil
	}
	return a.Intersect(v.online)
}

// cpus returns how many CPUs the machine may use and how many the host
// has online (0, 0 when unknown).
func (v *procViews) cpus() (int, int) {
	a := v.allowed()
	if a == nil {
		return 0, 0
	}
	return a.Len(), v.online.Len()
}

// memory is the machine's memory as its cgroup shows it now; without a
// readable cgroup, mem= alone.
func (k *kernel) memory() procview.Memory {
	m := procview.Memory{Mem: k.plan.Mem}
	if c := k.plan.MemCgroup; c != nil && m.Mem != 0 {
		levels, stat, err := procfuse.MemCgroup{Dir: c.Dir, Root: c.Root, V2: c.V2}.Read()
		if err == nil {
			m.Cgroup, m.Stat = levels, stat
		}
	}
	return m
}

// sysinfo returns the answer to the guest's sysinfo(2): the host's, with
// the machine's uptime and the memory figures of its /proc/meminfo.
func (v *procViews) sysinfo(memory func() procview.Memory) func() (mountemu.Sysinfo, error) {
	return func() (mountemu.Sysinfo, error) {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return mountemu.Sysinfo{}, os.NewSyscallError("sysinfo", err)
		}
		b, err := procfuse.ReadHost("/proc/meminfo")
		if err != nil {
			return mountemu.Sysinfo{}, err
		}
		sum, err := procview.MemSummary(b, memory())
		if err != nil {
			return mountemu.Sysinfo{}, err
		}
		up := si.Uptime - int64(v.clock.BootOffset)
		return mountemu.Sysinfo{
			Uptime: max(up, 0), Loads: si.Loads, Procs: si.Procs, MemUnit: 1,
			TotalRAM: sum.Total, FreeRAM: sum.Free, SharedRAM: sum.Shared, BufferRAM: sum.Buffers,
			TotalSwap: sum.SwapTotal, FreeSwap: sum.SwapFree,
		}, nil
	}
}

// startInTimeNS runs start (which forks G) on a thread that has a new
// time namespace for its children whose clocks start at the boot instant,
// and keeps that thread until done is closed (G's parent-death signal
// follows the thread that forked it). Without time namespaces it runs
// start as it is and reports why (nsErr); err is start's.
func (v *procViews) startInTimeNS(start func() error, done <-chan struct{}) (nsErr, err error) {
	type result struct{ nsErr, err error }
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with G
		err := unix.Unshare(unix.CLONE_NEWTIME)
		if err == nil {
			offsets := fmt.Sprintf("monotonic %d 0\nboottime %d 0\n", -v.mono, -int64(v.clock.BootOffset))
			err = os.WriteFile(fmt.Sprintf("/proc/%d/timens_offsets", unix.Gettid()), []byte(offsets), 0)
		} else {
			err = os.NewSyscallError("unshare CLONE_NEWTIME", err)
		}
		nsErr := err
		err = start()
		if nsErr == nil && err == nil {
			v.timens.Store(true)
		}
		res <- result{nsErr, err}
		if err == nil {
			<-done
		}
	}()
	r := <-res
	return r.nsErr, r.err
}
