package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

func init() { childrole.Register(plan.RoleGuest, run) }

func run() int {
	p, err := plan.DecodeGuest(os.Getenv(plan.EnvGuest))
	os.Unsetenv(plan.EnvGuest)
	if err != nil {
		fmt.Fprintf(os.Stderr, "guest init: %v\n", err)
		return 1
	}
	files, err := childrole.Files()
	if err != nil {
		fmt.Fprintf(os.Stderr, "guest init: %v\n", err)
		return 1
	}
	// Nothing of K's or of whoever started linux reaches a guest process:
	// every fd above stdio closes at the next exec, the guard's included
	// (it gets "alive" explicitly, through ExtraFiles).
	if err := sealFDs(); err != nil {
		fmt.Fprintf(os.Stderr, "guest init: %v\n", err)
		return 1
	}
	// The parent-death signal does not survive the execs into the guest's
	// init here, so a guard process watches K instead (see guard.go).
	if err := startGuard(files[plan.FDGuestAlive]); err != nil {
		fmt.Fprintf(os.Stderr, "guest init: %v\n", err)
		return 1
	}
	if p.Cgroup != "" {
		// Best effort: without it, stop/go falls back to signals.
		os.WriteFile(filepath.Join(p.Cgroup, "cgroup.procs"), []byte("0"), 0o644)
	}
	devTree, err := setup(p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "guest init: %v\n", err)
		return 1
	}
	if err := dropBounding(); err != nil {
		fmt.Fprintf(os.Stderr, "guest init: %v\n", err)
		return 1
	}
	if sock := files[plan.FDGuestMount]; sock != nil {
		installMountFilter(sock, devTree, p.Sysinfo) // locks this thread: execInit must run on it
	}
	if devTree != nil {
		devTree.Close()
	}
	if g := files[plan.FDGuestGo]; g != nil {
		// Run by root, P puts this process into the guest's cgroup and
		// starts the guard; no guest code runs before it has.
		b := make([]byte, 1)
		if n, _ := g.Read(b); n != 1 {
			fmt.Fprintln(os.Stderr, "guest init: the kernel gave up before the start")
			return 1
		}
		g.Close()
	}
	// The guest's cgroup namespace is rooted at the cgroup it now sits
	// in (the machine's guest/, delegated to it), as container engines
	// root theirs at the container's cgroup: an init that manages cgroups
	// (systemd) makes its own below that root, where it may write, not
	// beside it in K's cgroup. Best effort, like the move above.
	runtime.LockOSThread() // exec runs on this thread (locked already when the mount filter is in)
	if unix.Unshare(unix.CLONE_NEWCGROUP) == nil && p.OwnCgroup {
		mountCgroup()
	}
	err = execInit(p)
	fmt.Fprintf(os.Stderr, "Kernel panic - not syncing: %v\n", err)
	return 1
}

// mountCgroup mounts the guest's cgroup namespace (cgroup v2) on
// /sys/fs/cgroup, as container engines do. An init that manages cgroups
// takes the hierarchy it finds mounted there: systemd then runs on the
// unified hierarchy, the one the guest may write, even on a host whose v1
// controllers are in use (where it would otherwise pick the hybrid layout
// and fail to create its v1 "name=systemd" groups). Best effort: without
// /sys, the guest mounts what it wants itself.
func mountCgroup() {
	unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RELATIME, "")
}

func mount(src, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", src, target, fstype, err)
	}
	return nil
}

// bindNode creates an empty file at target and binds src onto it.
func bindNode(src, target string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", target, err)
	}
	f.Close()
	return mount(src, target, "", unix.MS_BIND, "")
}

// setup makes the guest's mounts and pivots into its root. It returns a
// detached copy of the guest's /dev (nil if one cannot be had) for K, which
// binds it where the guest mounts a devtmpfs.
func setup(p *plan.Guest) (*os.File, error) {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	r := p.RootMount
	for _, d := range []string{"proc", "sys", "dev"} {
		os.Mkdir(filepath.Join(r, d), 0o755) // may fail on a read-only root; mount reports it
	}
	if err := mount("proc", filepath.Join(r, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, err
	}
	if err := mount("sysfs", filepath.Join(r, "sys"), "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, ""); err != nil {
		// sysfs needs a fully visible /sys; carry on without it rather than fail the boot.
		fmt.Fprintf(os.Stderr, "guest init: %v (continuing without /sys)\n", err)
	}
	if err := maskPaths(r); err != nil {
		return nil, err
	}
	if err := bindViews(r, p.Views); err != nil {
		return nil, err
	}
	dev := filepath.Join(r, "dev")
	if err := mount("devtmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=0755,size=4m"); err != nil {
		return nil, err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := bindNode("/dev/"+n, filepath.Join(dev, n)); err != nil {
			return nil, err
		}
	}
	if p.Console != "" {
		for _, n := range []string{"console", "tty0"} {
			if err := bindNode(p.Console, filepath.Join(dev, n)); err != nil {
				return nil, err
			}
		}
	}
	if err := makeDevices(dev, p.Devices); err != nil {
		return nil, err
	}
	if err := linkDisks(dev, p.DiskDir, p.Links); err != nil {
		return nil, err
	}
	pts := filepath.Join(dev, "pts")
	os.Mkdir(pts, 0o755)
	if err := mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return nil, err
	}
	os.Symlink("pts/ptmx", filepath.Join(dev, "ptmx"))
	shm := filepath.Join(dev, "shm")
	os.Mkdir(shm, 0o1777)
	if err := mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return nil, err
	}
	os.Symlink("/proc/self/fd", filepath.Join(dev, "fd"))
	os.Symlink("/proc/self/fd/0", filepath.Join(dev, "stdin"))
	os.Symlink("/proc/self/fd/1", filepath.Join(dev, "stdout"))
	os.Symlink("/proc/self/fd/2", filepath.Join(dev, "stderr"))

	var devTree *os.File
	if fd, err := unix.OpenTree(unix.AT_FDCWD, dev, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE); err == nil {
		devTree = os.NewFile(uintptr(fd), "dev-tree")
	}
	if err := unix.Chdir(r); err != nil {
		return nil, fmt.Errorf("chdir %s: %w", r, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return nil, fmt.Errorf("pivot_root into %s: %w", r, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return nil, fmt.Errorf("detach old root: %w", err)
	}
	return devTree, unix.Chdir("/")
}

// makeDevices binds each device source onto its /dev name. A second name
// in a subdirectory for a source that already has a plain name ("ubd/1"
// for "ubdb") becomes a symlink to it instead: a name that is not itself a
// mount point, which tools that refuse to touch "mounted" devices by
// matching names against the mount table (busybox mke2fs) accept.
func makeDevices(dev string, devices map[string]string) error {
	names := make([]string, 0, len(devices))
	for name := range devices {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		si, sj := strings.Contains(names[i], "/"), strings.Contains(names[j], "/")
		if si != sj {
			return !si
		}
		return names[i] < names[j]
	})
	primary := map[string]string{}
	for _, name := range names {
		src := devices[name]
		target := filepath.Join(dev, name)
		if first, ok := primary[src]; ok && strings.Contains(name, "/") {
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			rel, err := filepath.Rel(filepath.Dir(target), filepath.Join(dev, first))
			if err != nil {
				return err
			}
			if err := os.Symlink(rel, target); err != nil {
				return err
			}
			continue
		}
		if err := bindNode(src, target); err != nil {
			return err
		}
		primary[src] = name
	}
	return nil
}

// linkDisks binds the ubd export directory onto /dev/.ubd and makes the
// symlinks of the partitions into it. A partition's name is a symlink and
// not a mount point of its own: the nodes K adds and removes while the
// guest runs (after a new partition table) then appear in every mount
// namespace of the guest, as on devtmpfs, and busybox's mke2fs, which
// refuses a device whose name is a mount point, accepts them.
func linkDisks(dev, dir string, links map[string]string) error {
	if dir == "" {
		return nil
	}
	target := filepath.Join(dev, plan.GuestDiskDir)
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	if err := mount(dir, target, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	for name, to := range links {
		if err := os.Symlink(to, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// ContainerName is the value of container= in init's environment, the
// variable systemd's container interface asks a container manager to set
// (https://systemd.io/CONTAINER_INTERFACE/): systemd then reads its
// options from its own argv instead of the host's /proc/cmdline, writes
// /run/systemd/container, skips the units conditioned on
// ConditionVirtualization=!container, and systemd-detect-virt answers
// "container-other". It is our own name, not one of the managers systemd
// knows (systemd-nspawn, lxc, docker, podman, ...), whose conventions
// (/run/host, machined registration) we do not follow. docs/linux.md.
const ContainerName = "umlkit"

// initEnv is init's environment: HOME, TERM and container=, then the
// command line's words. (A command line cannot set container= itself: like
// UML, we read "container=..." as an option of "con".)
func initEnv(cmdline []string) []string {
	return append([]string{"HOME=/", "TERM=linux", "container=" + ContainerName}, cmdline...)
}

func errnoOf(err error) int {
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return int(unix.EINVAL)
}

// systemdInit reports whether the init at path (in the guest's root) is
// systemd: its symbolic links resolve to a file named "systemd"
// (/sbin/init -> /lib/systemd/systemd on systemd-sysv distributions).
func systemdInit(path string) (string, bool) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	st, err := os.Stat(target)
	if err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return target, filepath.Base(target) == "systemd"
}

// initCandidates is Linux's search order when init= is not given.
var initCandidates = []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}

func execInit(p *plan.Guest) error {
	// Nothing of ours reaches the guest: every fd above stdio closes at exec.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	env := initEnv(p.InitEnv)
	if p.RDInit != "" {
		// The initramfs's init; when it cannot run, Linux goes on with
		// init= or the standard search, in the rootfs.
		fmt.Fprintf(os.Stdout, "Run %s as init process\r\n", p.RDInit)
		if p.NoCgroup != "" {
			if sd, ok := systemdInit(p.RDInit); ok {
				return fmt.Errorf("%s is systemd (%s), which cannot run without a cgroup it may manage: %s", p.RDInit, sd, p.NoCgroup)
			}
		}
		err := unix.Exec(p.RDInit, append([]string{p.RDInit}, p.InitArgs...), env)
		fmt.Fprintf(os.Stdout, "Failed to execute %s (error -%d)\r\n", p.RDInit, errnoOf(err))
	}
	try := initCandidates
	if p.Init != "" {
		try = []string{p.Init}
	}
	var errs []string
	for _, path := range try {
		fmt.Fprintf(os.Stdout, "Run %s as init process\r\n", path)
		if p.NoCgroup != "" {
			if sd, ok := systemdInit(path); ok {
				// It would stop at "Failed to create /init.scope control
				// group ... Freezing execution" and never end.
				return fmt.Errorf("%s is systemd (%s), which cannot run without a cgroup it may manage: %s", path, sd, p.NoCgroup)
			}
		}
		argv := append([]string{path}, p.InitArgs...)
		err := unix.Exec(path, argv, env)
		errs = append(errs, fmt.Sprintf("%s: %v", path, err))
		if p.Init != "" {
			return fmt.Errorf("Requested init %s failed (error %v).", path, err)
		}
	}
	return errors.New("No working init found.  Try passing init= option to kernel. (" + strings.Join(errs, "; ") + ")")
}
