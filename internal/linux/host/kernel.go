// Package kernel is the `linux` program: the host side (P) that parses UML's
// command line, claims the umid directory, checks the host's capabilities,
// and starts and supervises the kernel role (K, see kside.go) in fresh
// user/mount/net/uts/ipc/cgroup namespaces, restarting it on reboot. K in
// turn starts the guest init stage (internal/guestinit) in fresh pid and
// mount namespaces.
//
// Lifecycle (shared/spec/cmdline.md §5): guest halt/poweroff → exit 0;
// reboot → boot again (noreboot → exit 0); SIGINT/SIGTERM → guest killed,
// cleanup, exit 1; init exiting → panic line, exit 134.
//
// Design: shared/docs/architecture.md.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/umlkit/umlkit/internal/buildinfo"
	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/cmdline"
	"github.com/umlkit/umlkit/internal/hostcheck"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/loopdev"
	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
	"github.com/umlkit/umlkit/internal/umid"
)

// Stdio are the host streams of the process.
type Stdio struct {
	In       *os.File
	Out, Err io.Writer
}

// Main runs `linux` with argv[1:] and returns the exit status.
func Main(args []string, stdio Stdio) int {
	c, err := cmdline.Parse(args)
	if err != nil {
		fmt.Fprintf(stdio.Err, "linux: %v\n", strings.TrimPrefix(err.Error(), "command line: "))
		return 1
	}
	switch {
	case c.Help:
		fmt.Fprint(stdio.Out, helpText())
		return 0
	case c.Version:
		fmt.Fprintln(stdio.Out, buildinfo.Line("linux"))
		return 0
	case c.ShowConfig:
		fmt.Fprint(stdio.Out, showConfig())
		return 0
	}
	// fds left open by whoever started linux reach no helper, K or guest:
	// the ones a channel names (conN=fd:N) are handed on explicitly.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	m := &machine{cfg: c, stdio: stdio}
	return m.boot()
}

type machine struct {
	cfg   *cmdline.Config
	stdio Stdio
	dir   *umid.Dir
	work  string
	plan  *plan.Plan

	mapper   *idMapper       // subordinate id mapping for an ordinary user, or nil
	ids      *idBlock        // the host id block when run as root (hostids.go), or nil
	userns   *os.File        // K's user namespace while K runs (shifted: idmapped mounts)
	readyPid int             // that K's pid (its guard watches it)
	hostMu   sync.Mutex      // guards allow, userns, readyPid
	allow    map[string]bool // host files K may have P open (shifted)
	net      *hostNet        // host sides of the eth devices (net.go)
	cons     *hostConsoles   // host sides of the consoles and serial lines (console.go)

	cfgMu  sync.Mutex    // guards cfg.Ubd, cfg.Eth and hotEth against mconsole hot-plug
	hotEth map[int]bool  // eth units added by the mconsole
	cg     *freezeCgroup // the guest's freezer cgroup (stop/go), or nil

	sigstopNoted bool // the SIGSTOP fallback of stop/go was logged

	mu   sync.Mutex // guards kpid, ctl
	kpid int        // the running K, 0 between boots
	ctl  *controlClient
}

func (m *machine) setKernel(pid int, ctl *controlClient) {
	m.mu.Lock()
	m.kpid, m.ctl = pid, ctl
	m.mu.Unlock()
}

// signalKernel sends sig to the running K (halt: SIGUSR1, reboot: SIGUSR2).
func (m *machine) signalKernel(sig syscall.Signal) {
	m.mu.Lock()
	pid := m.kpid
	m.mu.Unlock()
	if pid > 0 {
		syscall.Kill(pid, sig)
	}
}

func (m *machine) logf(format string, args ...any) {
	if m.cfg.Quiet {
		return
	}
	fmt.Fprintf(m.stdio.Out, format+"\r\n", args...)
}

// fail prints one line naming the problem and returns the exit status.
func (m *machine) fail(format string, args ...any) int {
	fmt.Fprintf(m.stdio.Err, "linux: "+format+"\n", args...)
	return 1
}

func (m *machine) boot() int {
	c := m.cfg
	for _, w := range c.Warnings {
		m.logf("%s", w)
	}
	if p := hostcheck.UserNS(); p != nil {
		return m.fail("%v", p)
	}
	p, err := m.makePlan()
	if err != nil {
		return m.fail("%v", err)
	}
	m.plan = p

	umlDir := c.UmlDir
	if umlDir == "" {
		if umlDir, err = umid.DefaultUmlDir(); err != nil {
			return m.fail("%v", err)
		}
	}
	d, err := umid.Claim(umlDir, c.Umid, os.Getpid())
	if errors.Is(err, umid.ErrInUse) {
		return m.fail("%v", err)
	}
	if err != nil {
		return m.fail("%v", err)
	}
	m.dir = d
	defer d.Release()

	// K's mount point lives in the umid dir (an empty directory on the
	// host: K mounts a private tmpfs over it), so a kill -9 leaves nothing
	// that the next claim of the umid does not clean. As root, K is an
	// unprivileged host uid and works in its id block's directory.
	work := d.File(".kernel")
	if os.Geteuid() == 0 {
		b, err := allocIDs()
		if err != nil {
			return m.fail("guest id map: %v", err)
		}
		defer b.Close()
		m.ids = b
		work = b.work
		p.Shifted, p.DevDir = true, b.dev
		if err := m.prepareShifted(); err != nil {
			return m.fail("%v", err)
		}
	} else {
		if err := os.Mkdir(work, 0o700); err != nil {
			return m.fail("create work directory: %v", err)
		}
		defer os.Remove(work)
	}
	m.work = work
	p.WorkDir = work
	p.Hostname = "(none)"

	// Host terminal: raw while the guest owns it, restored on every exit path.
	if m.stdio.In != nil && term.IsTerminal(int(m.stdio.In.Fd())) {
		if st, err := term.MakeRaw(int(m.stdio.In.Fd())); err == nil {
			defer term.Restore(int(m.stdio.In.Fd()), st)
		}
	}
	if m.stdio.In != nil {
		if fl, err := unix.FcntlInt(m.stdio.In.Fd(), unix.F_GETFL, 0); err == nil {
			defer unix.FcntlInt(m.stdio.In.Fd(), unix.F_SETFL, fl)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	mc, err := m.startMconsole(ctx)
	if err != nil {
		return m.fail("%v", err)
	}
	defer mc.Close()

	m.logf("Linux version %s (umlkit)", buildinfo.Version)
	m.logf("Kernel command line: %s", c.GuestLine)
	if len(c.Unknown) > 0 {
		m.logf("Unknown kernel command line parameters \"%s\", will be passed to user space.", strings.Join(c.Unknown, " "))
	}
	m.logf("%s", mcserver.InitMessage(mc.Path()))
	if c.Mem != 0 {
		if cg, err := newMemCgroup(d.Umid, c.Mem); err != nil {
			m.logf("mem=%s: memory limit is not enforced (%v)", c.MemText, err)
		} else {
			defer cg.Close()
			m.logf("mem=%s: memory limit enforced by cgroup %s", c.MemText, cg.dir)
		}
	}
	// After the memory cgroup: on a v2-only host the freezer's cgroups
	// nest inside it, so the limit covers the whole machine.
	if fc, err := newFreezeCgroup(d.Umid); err == nil {
		defer fc.Close()
		m.cg = fc
		m.plan.GuestCgroup = fc.guest
		if m.ids != nil {
			if err := m.ids.delegateCgroup(fc); err != nil {
				m.logf("cgroup %s: not delegated to the guest (%v)", fc.guest, err)
			}
		}
	}
	if m.ids != nil {
		m.logf("%s", m.ids)
	}
	if os.Geteuid() != 0 {
		if mapper, why := subordinateMapper(); mapper != nil {
			m.mapper = mapper
			m.logf("%s", mapper)
		} else {
			m.logf("uid map: single mapping (guest root = uid %d); other guest uids are unmapped: %s", os.Geteuid(), why)
		}
	}
	m.net = m.setupNet()
	defer m.net.Close()
	m.cons = m.setupConsoles()
	m.plan.Consoles = m.cons.plan
	defer m.cons.Close()
	bootUbd := c.Ubd // what mconsole hot-plug changes lasts until the next boot
	for {
		m.resetHotplug(bootUbd)
		mcserver.SendNotify(m.logf, c.Notify, mconsole.NotifySocket, mc.Path())
		m.cg.Freeze(false) // a machine rebooted while stopped starts running
		code, err := m.runKernel(ctx)
		if err != nil {
			return m.fail("%v", err)
		}
		switch code {
		case plan.ExitReboot:
			if c.NoReboot {
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

// diskFromUbd resolves a ubd disk's paths (absolute) and kind; a missing
// image is UML's "Can't open" error wrapping the errno.
func diskFromUbd(u *cmdline.Ubd) (plan.Disk, error) {
	file, err := filepath.Abs(u.File)
	if err != nil {
		return plan.Disk{}, err
	}
	d := plan.Disk{Unit: u.Unit, File: file, ReadOnly: u.ReadOnly, Sync: u.Sync, NoCOW: u.NoCOW, Shared: u.Shared, NoTrim: u.NoTrim}
	check := file
	if u.Backing != "" {
		if d.Backing, err = filepath.Abs(u.Backing); err != nil {
			return plan.Disk{}, err
		}
		if _, err := os.Stat(file); err != nil {
			check = d.Backing // the COW file is created at boot
		}
	}
	st, err := os.Stat(check)
	if err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		return plan.Disk{}, &openError{fmt.Sprintf("ubd%c: Can't open \"%s\": errno = %d", 'a'+u.Unit, check, int(errno)), errno}
	}
	d.IsDir = st.IsDir() && u.Backing == ""
	for _, f := range []string{d.File, d.Backing, cowBacking(d.File)} {
		var st unix.Stat_t
		if f != "" && unix.Stat(f, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			d.IDs = append(d.IDs, plan.FileIdent{Dev: st.Dev, Ino: st.Ino})
		}
	}
	return d, nil
}

// openError is UML's message for a disk that cannot be opened, carrying
// the errno for the mconsole's reply.
type openError struct {
	msg   string
	errno syscall.Errno
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.errno }

// makePlan resolves the root filesystem and disks.
func (m *machine) makePlan() (*plan.Plan, error) {
	c := m.cfg
	p := &plan.Plan{Init: c.Init, InitArgs: c.InitArgs, InitEnv: c.InitEnv, Quiet: c.Quiet, Cmdline: c.GuestLine, Notify: c.Notify,
		Hostfs: plan.Hostfs{Root: c.HostfsRoot, Append: c.HostfsApp}}
	if p.Hostfs.Root != "" {
		if abs, err := filepath.Abs(p.Hostfs.Root); err == nil {
			p.Hostfs.Root = abs
		}
	}
	for _, u := range c.Ubd {
		if u == nil {
			continue
		}
		d, err := diskFromUbd(u)
		if err != nil {
			return nil, err
		}
		p.Disks = append(p.Disks, d)
	}
	unit, err := rootUnit(c.Root)
	if err != nil {
		return nil, err
	}
	var root *plan.Disk
	for i := range p.Disks {
		if p.Disks[i].Unit == unit {
			root = &p.Disks[i]
		}
	}
	if root == nil {
		return nil, fmt.Errorf("VFS: Cannot open root device \"%s\": no ubd%c configured", c.Root, 'a'+unit)
	}
	if root.IsDir {
		p.Root = plan.Root{Kind: "dir", Path: root.File, Unit: unit, ReadOnly: root.ReadOnly || c.ReadOnly}
		return p, nil
	}
	f2fs, err := hostcheck.Fuse2fs()
	if err != nil && os.Geteuid() != 0 {
		return nil, err
	}
	if p := hostcheck.FUSE(); p != nil {
		return nil, p
	}
	p.Root = plan.Root{Kind: "image", Path: root.File, Unit: unit, ReadOnly: root.ReadOnly || c.ReadOnly, FUSE2FS: f2fs}
	// As real root a plain image is mounted natively (loop + ext4); a COW
	// disk, or an ordinary user, goes through fuse2fs.
	p.Root.Native = os.Geteuid() == 0 && root.Backing == "" && os.Getenv("UMLKIT_ROOT_FUSE") == "" && !loopdev.IsCOWFile(root.File)
	return p, nil
}

// rootUnit maps root= to a ubd unit: 98:N*16, /dev/ubdX, /dev/ubd/N, ubdX.
func rootUnit(root string) (int, error) {
	r := strings.TrimPrefix(root, "/dev/")
	switch {
	case strings.HasPrefix(r, "98:"):
		var minor int
		if _, err := fmt.Sscanf(r, "98:%d", &minor); err == nil && minor%16 == 0 && minor/16 < cmdline.MaxUnits {
			return minor / 16, nil
		}
	case strings.HasPrefix(r, "ubd/"):
		var n int
		if _, err := fmt.Sscanf(r, "ubd/%d", &n); err == nil && n < cmdline.MaxUnits {
			return n, nil
		}
	case len(r) == 4 && strings.HasPrefix(r, "ubd") && r[3] >= 'a' && r[3] < 'a'+cmdline.MaxUnits:
		return int(r[3] - 'a'), nil
	}
	return 0, fmt.Errorf("VFS: Cannot open root device \"%s\": only whole ubd devices (98:N, /dev/ubdX) can be the root", root)
}

// runKernel starts K and waits for it; it returns K's exit code.
func (m *machine) runKernel(ctx context.Context) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	planJSON, err := m.plan.Encode()
	if err != nil {
		return 0, err
	}
	planEnv := plan.EnvPlan + "=" + planJSON
	cp, ck, err := controlPair()
	if err != nil {
		return 0, err
	}
	defer ck.Close()
	ctl, err := newControlClient(cp)
	if err != nil {
		return 0, err
	}
	defer ctl.Close()
	files := map[string]*os.File{plan.FDConIn: m.stdio.In, plan.FDControl: ck}
	if hk, stop := m.startHostHelper(); hk != nil { // host work for a root-run K (hosthelper.go)
		defer stop()
		files[plan.FDHostHelper] = hk
	}
	if m.plan.Root.Kind == "image" && m.plan.Root.Native {
		mfd, loop, err := loopdev.LoopMount(m.plan.Root.Path, m.plan.Root.ReadOnly)
		if err != nil {
			return 0, fmt.Errorf("VFS: Cannot open root device \"%s\": %w", m.plan.Root.Path, err)
		}
		defer func() {
			if !loopdev.WaitLoopFree(loop, 20*time.Second) {
				m.logf("%s: root file system still busy 20 s after the guest ended", loop)
			}
		}()
		defer mfd.Close()
		files[plan.FDRootMount] = mfd
	}
	if m.ids != nil && m.plan.Root.Kind == "dir" {
		// K cannot reach the host directory: P hands it the directory's
		// tree, idmapped once K's user namespace exists (kernelReady).
		tree, err := dirTree(m.plan.Root.Path, m.plan.Root.ReadOnly)
		if err != nil {
			return 0, fmt.Errorf("VFS: Cannot open root device \"%s\": %w", m.plan.Root.Path, err)
		}
		defer tree.Close()
		files[plan.FDRootMount] = tree
	}
	if m.ids != nil && m.plan.Notify != "" {
		// K cannot reach the notify socket's directory: it sends on a
		// socket P connected (notify.go).
		if c, err := dialNotify(m.plan.Notify); err == nil {
			defer c.Close()
			files[plan.FDNotify] = c
		}
	}
	if f, ok := m.stdio.Out.(*os.File); ok {
		files[plan.FDConOut] = f
	}
	order := m.cons.donate(files, []string{plan.FDConIn, plan.FDConOut, plan.FDControl, plan.FDRootMount, plan.FDHostHelper, plan.FDNotify})
	order = m.net.donate(files, order)
	extra, fdEnv := childrole.Donate(files, order)
	cmd := exec.Command(self)
	cmd.Args = []string{"linux-kernel"}
	cmd.Env = append(os.Environ(), childrole.EnvRole+"="+plan.RoleKernel, planEnv, fdEnv)
	cmd.ExtraFiles = extra
	cmd.Stdin = nil
	cmd.Stdout = m.stdio.Out
	cmd.Stderr = m.stdio.Err
	uid, gid := os.Geteuid(), os.Getegid()
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWCGROUP,
		Pdeathsig: syscall.SIGKILL,
		// K stays in P's process group: it reads the host terminal, which
		// a background group could not (SIGTTIN).
	}
	var nsReadyW *os.File
	if m.ids != nil {
		// Never an identity map: guest ids are the machine's id block.
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.ids.uid, Size: idBlockSize}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.ids.gid, Size: idBlockSize}}
		attr.GidMappingsEnableSetgroups = true // login's initgroups needs setgroups
		// P's uid (0) is not in the map: K becomes the namespace's root
		// (host uid base) before it execs.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		// K may not be able to reach the binary's path (a 0700 home):
		// it runs the open file instead.
		exe, err := os.Open(self)
		if err != nil {
			return 0, err
		}
		defer exe.Close()
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", 3+len(extra))
		extra = append(extra, exe)
		// K waits until P has its user namespace and idmapped the root.
		r, w, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		defer r.Close()
		defer w.Close()
		nsReadyW = w
		fdEnv += fmt.Sprintf(",nsready=%d", 3+len(extra))
		extra = append(extra, r)
		cmd.ExtraFiles = extra
		cmd.Env = append(os.Environ(), childrole.EnvRole+"="+plan.RoleKernel, planEnv, fdEnv)
	} else if uid == 0 {
		return 0, errors.New("internal error: root without an id block")
	} else if m.mapper == nil {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	// With newuidmap the maps are written after the clone: K starts as an
	// unmapped "premap" stage that waits on mapsync, then re-execs itself
	// as uid 0 of the namespace (which gives it its capabilities).
	var syncW *os.File
	if uid != 0 && m.mapper != nil {
		syncR, w, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		syncW = w
		defer syncR.Close()
		defer w.Close()
		extra = append(extra, syncR)
		fdEnv += fmt.Sprintf(",mapsync=%d", 2+len(extra))
		cmd.ExtraFiles = extra
		cmd.Env = append(os.Environ(), childrole.EnvRole+"="+plan.RolePremap, planEnv, fdEnv)
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", plan.EnvParent, os.Getpid()))
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start kernel process: %w", hostcheck.Explain(err))
	}
	ck.Close()
	if nsReadyW != nil {
		if err := m.kernelReady(cmd.Process.Pid, files[plan.FDRootMount]); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, err
		}
		nsReadyW.Write([]byte{1})
		nsReadyW.Close()
		defer m.dropUserNS()
	}
	if syncW != nil {
		if err := m.mapper.apply(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, err
		}
		syncW.Write([]byte{1})
		syncW.Close()
	}
	m.setKernel(cmd.Process.Pid, ctl)
	defer m.setKernel(0, nil)
	defer m.watchAddrs(cmd.Process.Pid, m.net.addrHooks())()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
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
