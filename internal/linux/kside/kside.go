package kside

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/loopdev"
	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/stage"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/ubd"
)

func init() {
	childrole.Register(plan.RoleKernel, kernelMain)
	childrole.Register(plan.RolePremap, premapMain)
}

func premapMain() int {
	files, err := childrole.Files() // consumes _UMLKIT_FDS; re-announced below
	if err != nil || files[plan.FDMapSync] == nil {
		fmt.Fprintln(os.Stderr, "linux: kernel pre-map stage without its sync fd")
		return plan.ExitFailed
	}
	b := make([]byte, 1)
	if n, _ := files[plan.FDMapSync].Read(b); n != 1 {
		return plan.ExitFailed // P gave up
	}
	files[plan.FDMapSync].Close()
	var parts []string
	for name, f := range files {
		if name != "mapsync" {
			parts = append(parts, fmt.Sprintf("%s=%d", name, f.Fd()))
		}
	}
	env := append(os.Environ(), childrole.EnvRole+"="+plan.RoleKernel, childrole.EnvFDs+"="+strings.Join(parts, ","))
	err = unix.Exec("/proc/self/exe", []string{"linux-kernel"}, env)
	fmt.Fprintf(os.Stderr, "linux: re-exec kernel: %v\n", err)
	return plan.ExitFailed
}

func kernelMain() int {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err == nil {
		if want := os.Getenv(plan.EnvParent); want != "" && want != strconv.Itoa(os.Getppid()) {
			return plan.ExitFailed // P died before we could follow it
		}
	}
	p, err := plan.Decode(os.Getenv(plan.EnvPlan))
	os.Unsetenv(plan.EnvPlan)
	if err != nil {
		fmt.Fprintf(os.Stderr, "linux: %v\n", err)
		return plan.ExitFailed
	}
	files, err := childrole.Files()
	if err != nil {
		fmt.Fprintf(os.Stderr, "linux: %v\n", err)
		return plan.ExitFailed
	}
	// Nothing K was given reaches its children unless donated by name
	// (the binary's own fd, P's stray fds, K's /dev/fuse fds later on).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if r := files[plan.FDNSReady]; r != nil {
		// Run as root: P idmaps the root mount with our user namespace
		// before we may attach it.
		b := make([]byte, 1)
		n, _ := r.Read(b)
		r.Close()
		if n != 1 {
			return plan.ExitFailed // P gave up
		}
	}
	in := files[plan.FDConIn]
	if in != nil {
		// On the runtime poller, so a deadline ends the host-to-console
		// copy (the dup shares P's open file description; P restores its
		// flags at exit). A file the poller cannot take stays as it is.
		if pin, err := sys.Pollable(in, plan.FDConIn); err == nil {
			in = pin
		}
	}
	k := &kernel{plan: p, in: in, out: files[plan.FDConOut], rootMount: files[plan.FDRootMount], files: files}
	if f := files[plan.FDHostHelper]; f != nil {
		k.helper = newHelperClient(f)
	}
	if c := files[plan.FDControl]; c != nil {
		go k.serveControl(c)
	}
	code, err := k.run()
	if err != nil {
		k.panicf("%v", err)
		return plan.ExitFailed
	}
	return code
}

type kernel struct {
	plan    *plan.Plan
	in, out *os.File
	logMu   sync.Mutex

	cow       map[int]bool    // units whose disk is a COW overlay
	rootMount *os.File        // detached native root mount from P, or nil
	rootImage *mountemu.Image // the native root P's helper mounted (initrd boot), or nil
	rootHeld  bool            // K mounted a ubd disk as the root: it is busy
	fuse2fs   *exec.Cmd
	rootDone  chan struct{} // closed when the root fs server exited
	master    *os.File
	guestPid  atomic.Int64 // host pid of the guest's init, 0 before it starts
	crash     atomic.Bool  // sysrq c: the halt signal that follows is a panic

	ubdMu   sync.Mutex               // guards ubd and blocks (mconsole hot-plug)
	ubd     map[int]*ubd.Disk        // open disks by unit
	idents  map[int][]plan.FileIdent // host identities of each open disk's files
	blocks  *blockfuse.Server        // the export of ubd as files in diskDir, nil while none
	diskDir string
	// extMinors: the /proc/partitions minors of partitions 16 and up
	// (disks.go), kept by the scan hook.
	extMinors extMinors

	ethMu  sync.Mutex          // guards relays (mconsole hot-plug)
	relays map[string]ethDev   // running network devices by name
	files  map[string]*os.File // donated by P (ethN: net.go)
	helper *helperClient       // P's host work (hosthelper.go), or nil
	cons   *consoles           // lines other than the default console (console.go)
	views  *procViews          // the guest's /proc views of this boot (procview.go)
}

// logf writes a boot-log line to the console output.
func (k *kernel) logf(format string, args ...any) {
	k.logMu.Lock()
	defer k.logMu.Unlock()
	if k.out != nil {
		fmt.Fprintf(k.out, format+"\r\n", args...)
	} else {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// run sets the machine's devices up and starts G (stages), then serves
// until the guest halts, reboots or dies; it returns the exit code for P.
func (k *kernel) run() (int, error) {
	gs := &guestStart{}
	undo, err := stage.Run(k.stages(gs))
	if err != nil {
		return 0, err
	}
	defer undo()
	g, master, sigs := gs.g, gs.master, gs.sigs
	startConsoles, startWatchdog := gs.startConsoles, gs.startWatchdog
	slave, aliveR, mnt := gs.slave, gs.aliveR, gs.mnt
	startConsoles()
	startWatchdog()
	slave.Close()
	aliveR.Close()
	mnt.start()

	outDone := make(chan struct{})
	guestGone := make(chan struct{})
	go func() { // pty -> host
		defer close(outDone)
		k.pumpConsole(master, guestGone)
	}()
	if k.in != nil {
		go func() { // host -> pty
			io.Copy(master, k.in)
		}()
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- g.Wait() }()

	forced := -1
	var werr error
loop:
	for {
		select {
		case werr = <-waitDone:
			break loop
		case s := <-sigs:
			switch s {
			case syscall.SIGUSR1: // mconsole halt
				forced = plan.ExitHalt
				if k.crash.Load() {
					k.panicf("sysrq triggered crash")
					forced = plan.ExitPanic
				}
			case syscall.SIGUSR2: // mconsole reboot
				forced = plan.ExitReboot
			default: // P is going down
				forced = plan.ExitFailed
			}
			g.Process.Signal(syscall.SIGKILL)
		case <-k.rootDone:
			k.panicf("root filesystem server exited")
			g.Process.Signal(syscall.SIGKILL)
			forced = plan.ExitPanic
		}
	}
	close(guestGone)
	if k.in != nil {
		k.in.SetReadDeadline(time.Now()) // unblock the host->pty copy
	}
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
	}
	if forced >= 0 {
		return forced, nil
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			switch ws.Signal() {
			case syscall.SIGHUP:
				k.logf("reboot: Restarting system")
				return plan.ExitReboot, nil
			case syscall.SIGINT:
				k.logf("reboot: System halted")
				return plan.ExitHalt, nil
			}
			k.panicf("Attempted to kill init! exitcode=0x%08x", int(ws.Signal()))
			return plan.ExitPanic, nil
		}
		k.panicf("Attempted to kill init! exitcode=0x%08x", ee.ExitCode()<<8)
		return plan.ExitPanic, nil
	}
	k.panicf("Attempted to kill init! exitcode=0x00000000")
	return plan.ExitPanic, nil
}

// mountRoot mounts the root filesystem at dir.
func (k *kernel) mountRoot(dir string) error {
	r := k.plan.Root
	switch r.Kind {
	case "dir":
		if k.rootMount != nil { // run as root: P's idmapped tree of the directory
			defer k.rootMount.Close()
			return loopdev.AttachMount(k.rootMount, dir)
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REC)
		if err := unix.Mount(r.Path, dir, "", flags, ""); err != nil {
			return fmt.Errorf("bind %s: %w", r.Path, err)
		}
		if r.ReadOnly {
			unix.Mount("", dir, "", flags|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
		return nil
	case "image":
		if k.rootMount != nil {
			defer k.rootMount.Close()
			if err := loopdev.AttachMount(k.rootMount, dir); err != nil {
				return err
			}
			k.setNativeMounted(r.Unit, true)
			k.rootHeld = true
			return nil
		}
		if r.Native && k.helper != nil {
			// An initrd boot whose image had no init: P did not mount the
			// root beforehand, its helper mounts it now (natively).
			img, err := k.helper.mount(r.Path, r.ReadOnly)
			if err != nil {
				return err
			}
			defer img.Tree.Close()
			if err := loopdev.AttachMount(img.Tree, dir); err != nil {
				return err
			}
			k.rootImage = img
			k.setNativeMounted(r.Unit, true)
			k.rootHeld = true
			return nil
		}
		if k.cow[r.Unit] || k.plan.Shifted {
			// A COW disk: fuse2fs reads and writes through the ubd driver
			// (so does any disk of a root-run linux: K cannot open the
			// image itself).
			r.Path = filepath.Join(k.plan.WorkDir, "disks", plan.DiskName(r.Unit))
		}
		if err := k.startFuse2fs(r, dir); err != nil {
			return err
		}
		k.rootHeld = true
		return nil
	case "":
		return errors.New("no ubd disk holds it")
	}
	return fmt.Errorf("unknown root kind %q", r.Kind)
}

func (k *kernel) startFuse2fs(r plan.Root, dir string) error {
	img, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	err = loopdev.CheckExtImage(img)
	img.Close()
	if err != nil {
		return err
	}
	if !r.ReadOnly {
		k.replayJournal(r.Path)
	}
	var before unix.Stat_t
	if err := unix.Stat(dir, &before); err != nil {
		return err
	}
	// The guest is the only writer and every change goes through this
	// mount; fuse2fs.go says what the kernel may cache.
	m := fuse2fsMount{Image: r.Path, Dir: dir, ReadOnly: r.ReadOnly}
	if k.cow[r.Unit] || k.plan.Shifted {
		// fuse2fs reads and writes one block at a time: give it the
		// disk's page-cached name, so the kernel gathers those into
		// large requests to the driver (fuse2fs is its only user).
		k.ubdMu.Lock()
		if k.blocks != nil {
			if p, err := k.blocks.Cached(plan.DiskName(r.Unit)); err == nil {
				m.Image = p
				m.Name = r.Path
			}
		}
		k.ubdMu.Unlock()
	}
	cmd := exec.Command(r.FUSE2FS, m.args()...)
	// fuse2fs chats ("Writing to the journal is not supported."); keep its
	// output for the error message instead of the console.
	var msgs childrole.Output
	cmd.Stdout = &msgs
	cmd.Stderr = &msgs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start fuse2fs: %w", err)
	}
	k.fuse2fs = cmd
	k.rootDone = make(chan struct{})
	go func() { cmd.Wait(); close(k.rootDone) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err == nil && st.Dev != before.Dev {
			return nil
		}
		select {
		case <-k.rootDone:
			return fmt.Errorf("fuse2fs %s exited before the mount appeared: %s", r.Path, oneLine(msgs.String()))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return fmt.Errorf("fuse2fs %s: mount did not appear in 20s", r.Path)
		}
	}
}

// unmountRoot unmounts the root and waits for its server to flush and exit.
func (k *kernel) unmountRoot(dir string) {
	unix.Sync()
	if err := unix.Unmount(dir, 0); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	if k.rootImage != nil && !k.rootImage.Wait(20*time.Second) {
		k.logf("root file system still busy 20 s after the guest ended")
	}
	if k.fuse2fs == nil {
		return
	}
	select {
	case <-k.rootDone:
	case <-time.After(30 * time.Second):
		k.logf("fuse2fs did not exit 30s after unmount; killing it")
		k.fuse2fs.Process.Kill()
		<-k.rootDone
	}
}

// pumpConsole copies the console pty to the host. A read error (EIO) means
// no guest process has the console open at the moment — getty's vhangup
// causes that too — so it retries until guestGone is closed, then drains
// what is left and returns at the first error.
func (k *kernel) pumpConsole(master *os.File, guestGone <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			k.logMu.Lock()
			k.out.Write(buf[:n])
			k.logMu.Unlock()
		}
		if err == nil {
			continue
		}
		select {
		case <-guestGone:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// replayJournal replays a pending ext3/4 journal (left by a crash or a
// kill -9 of an earlier boot) with e2fsck, because fuse2fs cannot: it would
// refuse the image. Nothing else is checked or changed.
func (k *kernel) replayJournal(image string) {
	e2fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		e2fsck = "/usr/sbin/e2fsck"
		if _, err := os.Stat(e2fsck); err != nil {
			return
		}
	}
	out, err := exec.Command(e2fsck, "-p", "-E", "journal_only", image).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 1 {
		k.logf("e2fsck -E journal_only %s: exit %d: %s", image, ee.ExitCode(), oneLine(string(out)))
	}
}
