package kside

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/stage"
)

// guestStart is what K's stages build up for starting G.
type guestStart struct {
	root, diskDir string
	rdinit        string   // the initramfs's init, when the root is the rootfs (initrd.go)
	master, slave *os.File // the console pty
	gp            plan.Guest
	startConsoles func()
	startWatchdog func()
	mnt           *mountEmu
	sigs          chan os.Signal
	aliveR        *os.File // G's end of the alive pipe (closed once G runs)
	g             *exec.Cmd
}

// stages are K's start-up, ending with G started (internal/stage: each
// undoes its work when a later one fails, or after the guest is gone).
func (k *kernel) stages(gs *guestStart) []stage.Stage {
	return []stage.Stage{
		{Name: "hostname", Run: func() (func(), error) {
			if err := unix.Sethostname([]byte(k.plan.Hostname)); err != nil {
				return nil, fmt.Errorf("sethostname: %w", err)
			}
			return nil, nil
		}},
		{Name: "private mounts", Run: func() (func(), error) {
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return nil, fmt.Errorf("make mounts private: %w", err)
			}
			return nil, bindPrivateNodes(k.plan.DevDir)
		}},
		// The work tmpfs and everything mounted in K's namespace go away
		// with the namespace when K exits.
		{Name: "work tmpfs", Run: func() (func(), error) {
			w := k.plan.WorkDir
			if err := unix.Mount("umlkit", w, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
				return nil, fmt.Errorf("mount work tmpfs on %s: %w", w, err)
			}
			gs.root, gs.diskDir = filepath.Join(w, "root"), filepath.Join(w, "disks")
			for _, d := range []string{gs.root, gs.diskDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}},
		{Name: "proc views", Run: func() (func(), error) { return k.startProcViews(k.plan.WorkDir) }},
		{Name: "disks", Run: func() (func(), error) { return k.openDisks(gs.diskDir) }},
		{Name: "root file system", Run: func() (func(), error) {
			if k.plan.Initrd != nil && k.files[plan.FDInitrd] != nil {
				ok, err := k.initramfs(gs.root)
				if err != nil {
					return nil, err
				}
				if ok {
					gs.rdinit = k.plan.Initrd.RDInit
					return func() { unix.Unmount(gs.root, unix.MNT_DETACH) }, nil
				}
			}
			if err := k.mountRoot(gs.root); err != nil {
				return nil, fmt.Errorf("VFS: Cannot open root device \"%s\": %w", k.plan.Root.Path, err)
			}
			return func() { k.unmountRoot(gs.root) }, nil
		}},
		{Name: "guest network", Run: func() (func(), error) { return k.startNet(k.files), nil }},
		{Name: "console", Run: func() (func(), error) {
			master, slave, err := pty.Open()
			if err != nil {
				return nil, fmt.Errorf("open console pty: %w", err)
			}
			k.master, gs.master, gs.slave = master, master, slave
			gs.gp = k.guestPlan(gs.root, gs.diskDir, slave.Name())
			gs.gp.RDInit = gs.rdinit
			return func() { master.Close(); slave.Close() }, nil
		}},
		{Name: "lines", Run: func() (func(), error) {
			start, stop, err := k.setupConsoles(gs.gp.Devices)
			gs.startConsoles = start
			return stop, err
		}},
		{Name: "watchdog", Run: func() (func(), error) {
			start, stop, err := k.setupWatchdog(gs.gp.Devices)
			gs.startWatchdog = start
			return stop, err
		}},
		{Name: "mount emulation", Run: func() (func(), error) {
			gs.mnt = k.prepareMounts(k.plan.WorkDir, &gs.gp) // guest mount(2) emulation (mounts.go)
			return gs.mnt.Close, nil
		}},
		{Name: "kernel signals", Run: func() (func(), error) {
			gs.sigs = make(chan os.Signal, 4)
			signal.Notify(gs.sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			return func() { signal.Stop(gs.sigs) }, nil
		}},
		{Name: "start guest", Run: func() (func(), error) { return k.startGuest(gs) }},
	}
}

// guestPlan is G's plan: the root K mounted, the init to run, the console
// and the guest's device files.
func (k *kernel) guestPlan(root, diskDir, console string) plan.Guest {
	gp := plan.Guest{
		RootMount: root,
		Init:      k.plan.Init,
		InitArgs:  k.plan.InitArgs,
		InitEnv:   k.plan.InitEnv,
		Console:   console,
		Devices:   map[string]string{},
		Cgroup:    k.plan.GuestCgroup,
		OwnCgroup: k.plan.GuestCgroup != "",
		NoCgroup:  k.plan.NoCgroup,
	}
	if k.outerGuard() {
		gp.Cgroup = "" // P moves G (host/hostguard.go)
	}
	if k.views != nil {
		gp.Views = k.views.paths
	}
	for _, d := range k.plan.Disks {
		if d.IsDir {
			continue
		}
		name := plan.DiskName(d.Unit)
		gp.Devices[name] = filepath.Join(diskDir, name)
		gp.Devices[fmt.Sprintf("ubd/%d", d.Unit)] = filepath.Join(diskDir, name)
		if k.blocks != nil {
			gp.DiskDir = diskDir
			for _, p := range k.blocks.Partitions(name) {
				if gp.Links == nil {
					gp.Links = map[string]string{}
				}
				gp.Links[p.Name] = plan.PartitionLink(p.Name)
			}
		}
	}
	return gp
}

// outerGuard reports whether P starts the guest's guard (linux run as
// root): out of the guest's reach, and P moves G into the guest's cgroup;
// G then starts no guard, does not move itself, and waits for both.
func (k *kernel) outerGuard() bool { return k.plan.Shifted && k.helper != nil }

// startGuest starts G in fresh pid and mount namespaces on the console.
// Its undo kills G if it still runs (a later stage failed).
func (k *kernel) startGuest(gs *guestStart) (func(), error) {
	b, err := gs.gp.Encode()
	if err != nil {
		return nil, err
	}
	g := exec.Command("/proc/self/exe")
	g.Args = []string{"linux-guest-init"}
	aliveR, aliveW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	donated := map[string]*os.File{plan.FDGuestAlive: aliveR, plan.FDGuestMount: gs.mnt.guestFile()}
	var goR, goW *os.File
	if k.outerGuard() {
		delete(donated, plan.FDGuestAlive)
		if goR, goW, err = os.Pipe(); err != nil {
			aliveR.Close()
			aliveW.Close()
			return nil, err
		}
		donated[plan.FDGuestGo] = goR
	}
	extra, fdEnv := childrole.Donate(donated, []string{plan.FDGuestAlive, plan.FDGuestMount, plan.FDGuestGo})
	g.ExtraFiles = extra
	g.Env = append(os.Environ(), childrole.EnvRole+"="+plan.RoleGuest, plan.EnvGuest+"="+b, fdEnv)
	g.Stdin, g.Stdout, g.Stderr = gs.slave, gs.slave, gs.slave
	g.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		// A session without a controlling terminal, like the real init:
		// the guest's getty or shell makes the console its own.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
	}
	closePipes := func() {
		aliveW.Close()
		if goR != nil {
			goR.Close()
			goW.Close()
		}
	}
	// G starts in a time namespace of its own (procview.go), on a
	// thread kept until G is gone.
	gone := make(chan struct{})
	if k.views != nil {
		var nsErr error
		nsErr, err = k.views.startInTimeNS(g.Start, gone)
		if nsErr != nil && err == nil {
			k.logf("time namespace: %v: the guest's clocks count from the host's boot", nsErr)
		}
	} else {
		err = g.Start()
	}
	if err != nil {
		aliveR.Close()
		closePipes()
		return nil, fmt.Errorf("start guest init: %w", err)
	}
	k.guestPid.Store(int64(g.Process.Pid))
	if goW != nil {
		if err := k.helper.guard(g.Process.Pid); err != nil {
			k.logf("guard: %v (the guest may outlive a killed linux until its id block is reused)", err)
		}
		goW.Write([]byte{1})
	}
	gs.g, gs.aliveR = g, aliveR
	return func() {
		if g.ProcessState == nil { // a later stage failed: G never ran its init
			g.Process.Kill()
			g.Wait()
		}
		close(gone)
		closePipes()
	}, nil
}

// StageNames lists K's stages, for tests that fail each in turn
// (internal/stage.EnvFail).
func StageNames() []string { return stage.Names((&kernel{}).stages(&guestStart{})) }
