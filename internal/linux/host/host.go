package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/buildinfo"
	"github.com/umlkit/umlkit/internal/cmdline"
	"github.com/umlkit/umlkit/internal/hostcheck"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/loopdev"
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
	case c.Cleanup:
		return cleanupMain(c, stdio)
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

	cfgMu  sync.Mutex      // guards cfg.Ubd, cfg.Eth and hotEth against mconsole hot-plug
	hotEth map[string]bool // network devices added by the mconsole, by name
	cg     *freezeCgroup   // the guest's freezer cgroup (stop/go), or nil
	noCg   *noCgroup       // why the machine has no cgroup of its own, or nil

	mconsole *mcserver.Server // the machine's mconsole socket

	initrd      *os.File // the initrd= image (donated to K at each boot), or nil
	initrdLog   string   // UML's line about an initrd= that cannot be had, or ""
	initrdPanic string   // UML's panic for an image larger than mem=, or ""
	diskLog     []string // disks given up on an initrd boot (UML's lines)

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
	p := &plan.Plan{Init: c.Init, InitArgs: c.InitArgs, InitEnv: c.InitEnv, Quiet: c.Quiet, Cmdline: c.GuestLine, Mem: c.Mem, Notify: c.Notify,
		Hostfs: plan.Hostfs{Root: c.HostfsRoot, Append: c.HostfsApp}}
	if p.Hostfs.Root != "" {
		if abs, err := filepath.Abs(p.Hostfs.Root); err == nil {
			p.Hostfs.Root = abs
		}
	}
	if c.Initrd != "" {
		m.openInitrd(p)
	}
	for _, u := range c.Ubd {
		if u == nil {
			continue
		}
		d, err := diskFromUbd(u)
		if err != nil && p.Initrd != nil {
			// The initramfs may not need the disk: UML's line, and the
			// boot goes on (the root's absence shows if it is needed).
			m.diskLog = append(m.diskLog, fmt.Sprintf("Failed to initialize ubd device %d :Couldn't determine size of device's file", u.Unit))
			continue
		}
		if err != nil {
			return nil, err
		}
		p.Disks = append(p.Disks, d)
	}
	unit, err := rootUnit(c.Root)
	if err != nil && p.Initrd != nil {
		// root= names something only the initramfs knows (LABEL=, UUID=,
		// a partition): K mounts no root unless the image has no init.
		p.Root = plan.Root{Path: c.Root}
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	var root *plan.Disk
	for i := range p.Disks {
		if p.Disks[i].Unit == unit {
			root = &p.Disks[i]
		}
	}
	if root == nil && p.Initrd != nil {
		p.Root = plan.Root{Path: c.Root, Unit: unit}
		return p, nil
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
