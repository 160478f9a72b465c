package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/chanspec"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/umlkit/umlkit/internal/buildinfo"
	"github.com/umlkit/umlkit/internal/cgroup"
	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/hostcheck"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/loopdev"
	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
	"github.com/umlkit/umlkit/internal/stage"
	"github.com/umlkit/umlkit/internal/umid"
)

// Boot is two lists of stages (internal/stage): the machine's, run once
// (bootStages), and each boot's, run every time K starts (kernelStages).
// A failing stage undoes the ones before it; the machine's undo runs when
// linux exits, a boot's when its K has exited.

// boot sets the machine up, then runs K until the guest halts: a reboot
// starts K again with the same host devices.
func (m *machine) boot() int {
	for _, w := range m.cfg.Warnings {
		m.logf("%s", w)
	}
	var ctx context.Context
	undo, err := stage.Run(m.bootStages(&ctx))
	var kp *kernelPanic
	if errors.As(err, &kp) {
		m.logf("%s", kp.Error())
		if m.mconsole != nil {
			mcserver.SendNotify(m.logf, m.cfg.Notify, mconsole.NotifyPanic, kp.msg)
		}
		return 134
	}
	if err != nil {
		return m.fail("%v", err)
	}
	defer undo()
	bootUbd := m.cfg.Ubd // what mconsole hot-plug changes lasts until the next boot
	for {
		m.resetHotplug(bootUbd)
		mcserver.SendNotify(m.logf, m.cfg.Notify, mconsole.NotifySocket, m.mconsole.Path())
		m.cg.Freeze(false) // a machine rebooted while stopped starts running
		code, err := m.runKernel(ctx)
		if err != nil {
			return m.fail("%v", err)
		}
		switch code {
		case plan.ExitReboot:
			if m.cfg.NoReboot {
				return 0
			}
			m.logf("")
			continue
		case plan.ExitHalt:
			return 0
		case plan.ExitPanic:
			return 134
		default: // a signal to linux, or K failed (its message is printed)
			return 1
		}
	}
}

// bootStages are the machine's stages; the signal stage sets *ctx.
func (m *machine) bootStages(ctx *context.Context) []stage.Stage {
	return []stage.Stage{
		{Name: "check host", Run: func() (func(), error) {
			if p := hostcheck.UserNS(); p != nil { // a *Problem: not returned as a nil error
				return nil, p
			}
			return nil, nil
		}},
		{Name: "plan", Run: func() (func(), error) {
			p, err := m.makePlan()
			m.plan = p
			return nil, err
		}},
		{Name: "claim umid", Run: m.claimUmid},
		{Name: "work directory", Run: m.workDir},
		{Name: "host terminal", Run: m.rawTerminal},
		{Name: "signals", Run: func() (func(), error) {
			var stop context.CancelFunc
			*ctx, stop = signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			return stop, nil
		}},
		{Name: "mconsole", Run: func() (func(), error) { return m.mconsoleStage(*ctx) }},
		// Sweeps stale machine cgroups and, for a user whose cgroup is
		// not writable, gets a delegated scope (cgroups.go).
		{Name: "host cgroups", Run: func() (func(), error) { return m.hostCgroups(*ctx) }},
		{Name: "memory cgroup", Run: m.memoryCgroup},
		// After the memory cgroup: on a v2-only host the freezer's cgroups
		// nest inside it, so the limit covers the whole machine.
		{Name: "freezer cgroup", Run: m.freezerCgroup},
		{Name: "id map", Run: m.idMap},
		{Name: "network", Run: func() (func(), error) {
			m.net = m.setupNet()
			return m.net.Close, nil
		}},
		{Name: "consoles", Run: func() (func(), error) {
			m.cons = m.setupConsoles()
			m.plan.Consoles = m.cons.plan
			return m.cons.Close, nil
		}},
		{Name: "host limits", Run: func() (func(), error) { return nil, m.hostLimits() }},
	}
}

// hostLimits refuses the machine when the host cannot give it what it
// needs from limits the kernel shows (internal/hostcheck): one pty per
// console and serial line that is not "none", and tasks for its processes.
func (m *machine) hostLimits() error {
	ptys := 0
	for _, l := range m.plan.Consoles.Lines {
		if !chanspec.IsNone(l.Spec) {
			ptys++
		}
	}
	if p := hostcheck.Ptys(ptys); p != nil {
		return p
	}
	if p := hostcheck.Tasks(); p != nil {
		return p
	}
	return nil
}

// claimUmid claims ~/.uml/UMID (or uml_dir=/umid=) for this machine.
func (m *machine) claimUmid() (func(), error) {
	umlDir := m.cfg.UmlDir
	if umlDir == "" {
		var err error
		if umlDir, err = umid.DefaultUmlDir(); err != nil {
			return nil, err
		}
	}
	d, err := umid.Claim(umlDir, m.cfg.Umid, os.Getpid())
	if err != nil {
		return nil, err
	}
	m.dir = d
	return func() { d.Release() }, nil
}

// mconsoleStage opens the mconsole socket and prints the boot log's head.
func (m *machine) mconsoleStage(ctx context.Context) (func(), error) {
	c := m.cfg
	mc, err := m.startMconsole(ctx)
	if err != nil {
		return nil, err
	}
	m.mconsole = mc
	m.logf("Linux version %s (umlkit)", buildinfo.Version)
	if m.initrdLog != "" {
		m.logf("%s", m.initrdLog)
	}
	if m.initrdPanic != "" {
		mc.Close()
		m.mconsole = nil
		return nil, &kernelPanic{m.initrdPanic}
	}
	m.logf("Kernel command line: %s", c.GuestLine)
	if len(c.Unknown) > 0 {
		m.logf("Unknown kernel command line parameters \"%s\", will be passed to user space.", strings.Join(c.Unknown, " "))
	}
	m.logf("%s", mcserver.InitMessage(mc.Path()))
	for _, l := range m.diskLog {
		m.logf("%s", l)
	}
	return func() { mc.Close() }, nil
}

// memoryCgroup enforces mem= where the host lets it (else it says so).
func (m *machine) memoryCgroup() (func(), error) {
	c := m.cfg
	if c.Mem == 0 {
		return nil, nil
	}
	cg, err := newMemCgroup(m.dir.Umid, c.Mem)
	if err != nil {
		m.logf("mem=%s: memory limit is not enforced (%v)", c.MemText, err)
		return nil, nil
	}
	m.logf("mem=%s: memory limit enforced by cgroup %s", c.MemText, cg.dir)
	m.plan.MemCgroup = &plan.MemCgroup{Dir: cg.dir, Root: cg.root, V2: cg.v2}
	return func() { m.plan.MemCgroup = nil; cg.Close() }, nil
}

// freezerCgroup makes the cgroups of the mconsole's stop/go and of a
// guest that manages cgroups (systemd). Without them, stop/go fall back to
// SIGSTOP, G refuses to start systemd, and one line says so.
func (m *machine) freezerCgroup() (func(), error) {
	if m.noCg == nil {
		fc, err := newFreezeCgroup(m.dir.Umid)
		if err == nil {
			m.cg = fc
			m.plan.GuestCgroup = fc.guest
			if m.ids != nil {
				if err := m.ids.delegateCgroup(fc); err != nil {
					m.logf("cgroup %s: not delegated to the guest (%v)", fc.guest, err)
				}
			}
			return fc.Close, nil
		}
		m.noCg = &noCgroup{why: err.Error()}
		switch {
		case errors.Is(err, cgroup.ErrNoV2):
			m.noCg.fix = noV2Fix
		case os.Geteuid() != 0:
			m.noCg.fix = userFix()
		}
	}
	m.plan.NoCgroup = m.noCg.String()
	line := "cgroup: " + m.noCg.why + ": stop/go signal the guest and a systemd guest cannot boot"
	if m.noCg.fix != "" {
		line += "; " + m.noCg.fix
	}
	m.logf("%s", line)
	return nil, nil
}

// idMap says how guest ids map to host ids; an ordinary user's
// subordinate ids are used when newuidmap can map them.
func (m *machine) idMap() (func(), error) {
	if m.ids != nil {
		m.logf("%s", m.ids)
		return nil, nil
	}
	if mapper, why := subordinateMapper(); mapper != nil {
		m.mapper = mapper
		m.logf("%s", mapper)
	} else {
		m.logf("uid map: single mapping (guest root = uid %d); other guest uids are unmapped: %s", os.Geteuid(), why)
	}
	return nil, nil
}

// workDir makes K's work directory. K's mount point lives in the umid dir
// (an empty directory on the host: K mounts a private tmpfs over it), so a
// kill -9 leaves nothing that the next claim of the umid does not clean.
// As root, K is an unprivileged host uid and works in its id block's
// directory.
func (m *machine) workDir() (func(), error) {
	if os.Geteuid() != 0 {
		work := m.dir.File(".kernel")
		if err := os.Mkdir(work, 0o700); err != nil {
			return nil, fmt.Errorf("create work directory: %v", err)
		}
		m.setWork(work)
		return func() { os.Remove(work) }, nil
	}
	b, err := allocIDs()
	if err != nil {
		return nil, fmt.Errorf("guest id map: %v", err)
	}
	m.ids = b
	m.plan.Shifted, m.plan.DevDir = true, b.dev
	if err := m.prepareShifted(); err != nil {
		b.Close()
		m.ids = nil
		return nil, err
	}
	m.setWork(b.work)
	return b.Close, nil
}

func (m *machine) setWork(work string) {
	m.work = work
	m.plan.WorkDir = work
	m.plan.Hostname = "(none)"
}

// rawTerminal puts the host terminal in raw mode while the guest owns it;
// its undo restores the terminal and stdin's file flags (K makes its copy
// non-blocking).
func (m *machine) rawTerminal() (func(), error) {
	in := m.stdio.In
	if in == nil {
		return nil, nil
	}
	var undo []func()
	if term.IsTerminal(int(in.Fd())) {
		if st, err := term.MakeRaw(int(in.Fd())); err == nil {
			undo = append(undo, func() { term.Restore(int(in.Fd()), st) })
		}
	}
	if fl, err := unix.FcntlInt(in.Fd(), unix.F_GETFL, 0); err == nil {
		undo = append(undo, func() { unix.FcntlInt(in.Fd(), unix.F_SETFL, fl) })
	}
	return func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}, nil
}

// kernelStart is what one boot's stages build up for starting K.
type kernelStart struct {
	self  string              // the linux binary
	files map[string]*os.File // donated to K by name
	ctl   *controlClient
	ck    *os.File // K's end of the control channel (closed once K runs)
	cmd   *exec.Cmd
}

// runKernel starts K and waits for it; it returns K's exit code.
func (m *machine) runKernel(ctx context.Context) (int, error) {
	ks := &kernelStart{files: map[string]*os.File{plan.FDConIn: m.stdio.In}}
	undo, err := stage.Run(m.kernelStages(ks))
	if err != nil {
		return 0, err
	}
	defer undo()
	cmd := ks.cmd
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		return plan.ExitFailed, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return plan.ExitHalt, nil
}

// kernelStages are one boot's stages, ending with K running.
func (m *machine) kernelStages(ks *kernelStart) []stage.Stage {
	return []stage.Stage{
		{Name: "kernel binary", Run: func() (func(), error) {
			self, err := os.Executable()
			ks.self = self
			return nil, err
		}},
		{Name: "control channel", Run: func() (func(), error) {
			cp, ck, err := controlPair()
			if err != nil {
				return nil, err
			}
			ctl, err := newControlClient(cp)
			if err != nil {
				ck.Close()
				return nil, err
			}
			ks.ctl, ks.ck = ctl, ck
			ks.files[plan.FDControl] = ck
			return func() { ck.Close(); ctl.Close() }, nil
		}},
		{Name: "host helper", Run: func() (func(), error) {
			hk, stop := m.startHostHelper() // host work for a root-run K (hosthelper.go)
			if hk == nil {
				return nil, nil
			}
			ks.files[plan.FDHostHelper] = hk
			return stop, nil
		}},
		{Name: "root mount", Run: func() (func(), error) { return m.rootMount(ks) }},
		{Name: "initrd", Run: func() (func(), error) {
			if m.initrd != nil {
				ks.files[plan.FDInitrd] = m.initrd // K reads it with pread: one descriptor serves every boot
			}
			return nil, nil
		}},
		{Name: "notify socket", Run: func() (func(), error) {
			if m.ids == nil || m.plan.Notify == "" {
				return nil, nil
			}
			// K cannot reach the notify socket's directory: it sends on a
			// socket P connected.
			c, err := dialNotify(m.plan.Notify)
			if err != nil {
				return nil, nil // K logs the failed sends
			}
			ks.files[plan.FDNotify] = c
			return func() { c.Close() }, nil
		}},
		{Name: "start kernel", Run: func() (func(), error) { return m.startKernel(ks) }},
		{Name: "address hooks", Run: func() (func(), error) {
			return m.watchAddrs(ks.cmd.Process.Pid, m.net.addrHooks()), nil
		}},
	}
}

// rootMount prepares the root K attaches: the native loop+ext4 mount of a
// plain image (real root), or the tree of a directory root that a
// root-run K cannot reach itself (idmapped once K's user namespace exists,
// kernelReady).
func (m *machine) rootMount(ks *kernelStart) (func(), error) {
	r := m.plan.Root
	switch {
	case m.plan.Initrd != nil:
		// K mounts the root only if the initramfs has no init, through
		// the host helper then (kside/initrd.go).
		return nil, nil
	case r.Kind == plan.RootImage && r.Native:
		mfd, loop, err := loopdev.LoopMount(r.Path, r.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("VFS: Cannot open root device \"%s\": %w", r.Path, err)
		}
		ks.files[plan.FDRootMount] = mfd
		return func() {
			mfd.Close()
			if !loopdev.WaitLoopFree(loop, 20*time.Second) {
				m.logf("%s: root file system still busy 20 s after the guest ended", loop)
			}
		}, nil
	case m.ids != nil && r.Kind == plan.RootDir:
		tree, err := dirTree(r.Path, r.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("VFS: Cannot open root device \"%s\": %w", r.Path, err)
		}
		ks.files[plan.FDRootMount] = tree
		return func() { tree.Close() }, nil
	}
	return nil, nil
}

// kernelIDs is how K gets its ids: the maps in the clone's attributes, or
// written by P after the clone (newuidmap); the pipes K waits on.
type kernelIDs struct {
	role      string   // plan.RoleKernel, or plan.RolePremap (maps written after the clone)
	path      string   // what to exec ("": the binary's path)
	nsReadyW  *os.File // root: P has K's user namespace and idmapped the root
	syncW     *os.File // newuidmap: P wrote the maps
	ourCopies []*os.File
}

// close releases P's ends once K runs (or failed to start).
func (k *kernelIDs) close() {
	for _, f := range append(k.ourCopies, k.nsReadyW, k.syncW) {
		if f != nil {
			f.Close()
		}
	}
}

// mapIDs sets K's id maps in attr and adds the descriptors K then needs
// to extra (announced in *fdEnv).
func (m *machine) mapIDs(ks *kernelStart, attr *syscall.SysProcAttr, extra *[]*os.File, fdEnv *string) (*kernelIDs, error) {
	ids := &kernelIDs{role: plan.RoleKernel}
	donate := func(name string, f *os.File) {
		*fdEnv += fmt.Sprintf(",%s=%d", name, 3+len(*extra))
		*extra = append(*extra, f)
	}
	uid, gid := os.Geteuid(), os.Getegid()
	switch {
	case m.ids != nil:
		// Never an identity map: guest ids are the machine's id block.
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.ids.uid, Size: idBlockSize}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.ids.gid, Size: idBlockSize}}
		attr.GidMappingsEnableSetgroups = true // login's initgroups needs setgroups
		// P's uid (0) is not in the map: K becomes the namespace's root
		// (host uid base) before it execs.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		// K may not be able to reach the binary's path (a 0700 home):
		// it runs the open file instead.
		exe, err := os.Open(ks.self)
		if err != nil {
			return nil, err
		}
		ids.ourCopies = append(ids.ourCopies, exe)
		ids.path = fmt.Sprintf("/proc/self/fd/%d", 3+len(*extra))
		*extra = append(*extra, exe)
		// K waits until P has its user namespace and idmapped the root.
		r, w, err := os.Pipe()
		if err != nil {
			ids.close()
			return nil, err
		}
		ids.ourCopies = append(ids.ourCopies, r)
		ids.nsReadyW = w
		donate(plan.FDNSReady, r)
	case uid == 0:
		return nil, errors.New("internal error: root without an id block")
	case m.mapper == nil:
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	default:
		// With newuidmap the maps are written after the clone: K starts
		// as an unmapped "premap" stage that waits on mapsync, then
		// re-execs itself as uid 0 of the namespace (which gives it its
		// capabilities).
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		ids.ourCopies = append(ids.ourCopies, r)
		ids.syncW = w
		donate(plan.FDMapSync, r)
		ids.role = plan.RolePremap
	}
	return ids, nil
}

// startKernel starts K in its fresh namespaces with the plan and the
// donated descriptors, and waits until it may run (id maps written, user
// namespace taken). Its undo ends K (if it still runs) and forgets it.
func (m *machine) startKernel(ks *kernelStart) (func(), error) {
	planJSON, err := m.plan.Encode()
	if err != nil {
		return nil, err
	}
	files := ks.files
	if f, ok := m.stdio.Out.(*os.File); ok {
		files[plan.FDConOut] = f
	}
	order := m.cons.donate(files, []string{plan.FDConIn, plan.FDConOut, plan.FDControl, plan.FDRootMount, plan.FDHostHelper, plan.FDNotify, plan.FDInitrd})
	order = m.net.donate(files, order)
	extra, fdEnv := childrole.Donate(files, order)
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWCGROUP,
		Pdeathsig: syscall.SIGKILL,
		// K stays in P's process group: it reads the host terminal, which
		// a background group could not (SIGTTIN).
	}
	ids, err := m.mapIDs(ks, attr, &extra, &fdEnv)
	if err != nil {
		return nil, err
	}
	defer ids.close()
	cmd := exec.Command(ks.self)
	if ids.path != "" {
		cmd.Path = ids.path
	}
	cmd.Args = []string{"linux-kernel"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, m.stdio.Out, m.stdio.Err
	cmd.ExtraFiles = extra
	cmd.Env = append(os.Environ(), childrole.EnvRole+"="+ids.role, plan.EnvPlan+"="+planJSON, fdEnv,
		fmt.Sprintf("%s=%d", plan.EnvParent, os.Getpid()))
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kernel process: %w", hostcheck.Explain(err))
	}
	ks.ck.Close()
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	if ids.nsReadyW != nil {
		if err := m.kernelReady(cmd.Process.Pid, files[plan.FDRootMount]); err != nil {
			stop()
			m.dropUserNS()
			return nil, err
		}
		// K sets up its devices once it may run: their kernel data
		// paths must be there by then.
		m.cfgMu.Lock() // against a hot-plug changing the devices
		m.net.joinKernelPaths(m, cmd.Process.Pid)
		m.cfgMu.Unlock()
		ids.nsReadyW.Write([]byte{1})
	}
	if ids.syncW != nil {
		if err := m.mapper.apply(cmd.Process.Pid); err != nil {
			stop()
			return nil, err
		}
		ids.syncW.Write([]byte{1})
	}
	ks.cmd = cmd
	m.setKernel(cmd.Process.Pid, ks.ctl)
	return func() {
		m.setKernel(0, nil)
		m.dropUserNS()
		// After runKernel's Wait this only forgets K; on a failure of a
		// later stage it ends K and reaps it.
		if cmd.ProcessState == nil {
			stop()
		}
		m.cfgMu.Lock()
		m.net.leaveKernelPaths()
		m.cfgMu.Unlock()
	}, nil
}
