package kside

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/sys"
	"golang.org/x/sys/unix"
)

// numLoops is how many emulated /dev/loopN the guest gets.
const numLoops = 8

// mountEmu is K's half of the guest's mount emulation (internal/mountemu):
// it makes the emulated loop files, receives the seccomp listener from G
// and serves it. Mounts of ext2/3/4 images go through fuse2fs.
type mountEmu struct {
	k        *kernel
	guestEnd *os.File // donated to G as "mountemu"
	kEnd     *os.File
	stage    string // where fuse2fs mounts before the tree moves to the guest
	fuse2fs  string
	helper   *helperClient     // P's native mounts (real root), or nil
	loopFS   *blockfuse.Server // serves the loop files, or nil
	srv      *mountemu.Server
	seq      atomic.Int64
	done     chan struct{} // closed when Serve returned
	devDir   string        // where K keeps G's copy of the guest's /dev (devtmpfs mounts)
	devTree  *os.File      // devDir's mount (O_PATH) once G sent it, set before Serve
}

// prepareMounts makes the loop files under w and adds them to gp's
// devices. It returns nil (with a log line) when emulation is impossible.
func (k *kernel) prepareMounts(w string, gp *plan.Guest) *mountEmu {
	m := &mountEmu{k: k, stage: filepath.Join(w, "mnt"), done: make(chan struct{})}
	root := k.plan.Hostfs.Root
	if k.plan.Hostfs.Append {
		k.logf("hostfs: append is not supported (hostfs mounts are bind mounts of the host directory); files open normally")
	}
	loops := filepath.Join(w, "loop")
	if err := os.Mkdir(loops, 0o755); err != nil {
		k.logf("mount emulation off: %v", err)
		return nil
	}
	os.Mkdir(m.stage, 0o700)
	m.devDir = filepath.Join(w, "guestdev")
	os.Mkdir(m.devDir, 0o700)
	cfg := mountemu.Config{HostfsRoot: root, LoopControl: filepath.Join(loops, "loop-control"), MountImage: m.mountImage,
		Logf: func(format string, args ...any) { k.logf(format, args...) }, Disks: k.diskIDs, Block: m.blockDevice,
		DevTree: func() *os.File { return m.devTree }}
	if k.plan.Shifted && k.helper != nil {
		cfg.OpenHostfs = k.helper.hostfs
	}
	if k.views != nil && k.plan.Mem != 0 {
		cfg.Sysinfo = k.views.sysinfo(k.memory) // the machine's memory (procview.go)
	}
	for i := 0; i < numLoops; i++ {
		cfg.Loops = append(cfg.Loops, filepath.Join(loops, fmt.Sprintf("loop%d", i)))
	}
	srv, err := mountemu.NewServer(cfg)
	if err != nil {
		k.logf("mount emulation off: %v", err)
		return nil
	}
	m.srv = srv
	gp.Sysinfo = cfg.Sysinfo != nil
	// The loop files show the window of their backing file (dd, blkid,
	// fsck on /dev/loopN); if they cannot be served, empty files still
	// let mount(8) set up its loop devices.
	export := map[string]blockfuse.Disk{"loop-control": mountemu.ControlFile{}}
	for i := range cfg.Loops {
		export[filepath.Base(cfg.Loops[i])] = srv.LoopFile(i)
	}
	if m.loopFS, err = blockfuse.Mount(loops, export); err != nil {
		for _, p := range append(cfg.Loops, cfg.LoopControl) {
			if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o660); err == nil {
				f.Close()
			}
		}
	}
	if m.guestEnd, m.kEnd, err = sys.FilePair(unix.SOCK_SEQPACKET, "mountemu", "mountemu-k"); err != nil {
		k.logf("mount emulation off: %v", err)
		return nil
	}
	gp.Devices["loop-control"] = cfg.LoopControl
	for i, p := range cfg.Loops {
		gp.Devices[fmt.Sprintf("loop%d", i)] = p
	}
	m.helper = k.helper
	if m.fuse2fs = k.plan.Root.FUSE2FS; m.fuse2fs == "" {
		if p, err := exec.LookPath("fuse2fs"); err == nil {
			m.fuse2fs = p
		}
	}
	return m
}

// blockDevice finds the device file (a ubd disk, one of its partitions, a
// loop file) with device number dev and inode ino, for the block ioctls.
func (m *mountEmu) blockDevice(dev, ino uint64) (mountemu.BlockDevice, bool) {
	m.k.ubdMu.Lock()
	srv := m.k.blocks
	m.k.ubdMu.Unlock()
	for _, s := range []*blockfuse.Server{srv, m.loopFS} {
		if s == nil {
			continue
		}
		if d, ok := s.Device(dev, ino); ok && d.Name() != "loop-control" {
			return blockDevice{d}, true
		}
	}
	return nil, false
}

// blockDevice is a blockfuse.Device with mountemu's Rescan errors.
type blockDevice struct{ blockfuse.Device }

func (d blockDevice) Rescan() error {
	_, err := d.Device.Rescan()
	switch {
	case errors.Is(err, blockfuse.ErrNotPartitionable):
		return mountemu.ErrNotPartitionable
	case errors.Is(err, blockfuse.ErrBusy):
		return mountemu.ErrBusy
	}
	return err
}

// guestFile is the fd G needs (nil-safe).
func (m *mountEmu) guestFile() *os.File {
	if m == nil {
		return nil
	}
	return m.guestEnd
}

// start receives G's listener and serves it in the background.
func (m *mountEmu) start() {
	if m == nil {
		return
	}
	m.guestEnd.Close()
	conn, err := net.FileConn(m.kEnd)
	m.kEnd.Close()
	if err != nil {
		close(m.done)
		return
	}
	go func() {
		defer close(m.done)
		defer conn.Close()
		msg, files, _, err := fdpass.Recv(conn.(*net.UnixConn), 512, 2)
		if err != nil {
			if errors.Is(err, fdpass.ErrNoFD) && len(msg) > 0 {
				m.k.logf("mount emulation off: %s", msg)
			}
			return
		}
		if len(files) > 1 {
			// A detached tree cannot be cloned: it goes into K's mount
			// namespace, whence each devtmpfs mount clones it.
			if unix.MoveMount(int(files[1].Fd()), "", unix.AT_FDCWD, m.devDir, unix.MOVE_MOUNT_F_EMPTY_PATH) == nil {
				if fd, err := unix.Open(m.devDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
					m.devTree = os.NewFile(uintptr(fd), "guestdev")
					defer m.devTree.Close()
				}
			}
			files[1].Close()
		}
		if err := m.srv.Serve(files[0]); err != nil {
			m.k.logf("mount emulation: %v", err)
		}
	}()
}

// Close waits for the serving to end (the guest is gone) and for every
// fuse2fs to flush and exit.
func (m *mountEmu) Close() {
	if m == nil {
		return
	}
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
	}
	unix.Unmount(m.devDir, unix.MNT_DETACH) // its binds hold the disks' and loops' exports
	m.srv.Close()
	if m.loopFS != nil {
		m.loopFS.Close()
	}
}

// mountImage mounts an ext2/3/4 image and returns it as a
// detached tree: natively through P's helper when linux runs as root,
// otherwise (or for a window of the file) with fuse2fs.
func (m *mountEmu) mountImage(req mountemu.ImageRequest) (*mountemu.Image, error) {
	if m.helper != nil && req.Offset == 0 && req.SizeLimit == 0 {
		if path, unit := m.k.plainImage(req.File); path != "" {
			// The host kernel mounts the image: no guest write may reach
			// the disk while it does (blockfuse SetMounted).
			m.k.setNativeMounted(unit, true)
			img, err := m.helper.mount(path, req.ReadOnly)
			if err != nil {
				m.k.setNativeMounted(unit, false)
				return nil, err
			}
			wait := img.Wait
			img.Wait = func(d time.Duration) bool {
				if !wait(d) {
					return false
				}
				m.k.setNativeMounted(unit, false)
				return true
			}
			return img, nil
		}
	}
	if m.fuse2fs == "" {
		return nil, errors.New("fuse2fs is not installed (apt-get install fuse2fs)")
	}
	dir := filepath.Join(m.stage, strconv.FormatInt(m.seq.Add(1), 10))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	var before unix.Stat_t
	if err := unix.Stat(dir, &before); err != nil {
		return nil, err
	}
	fm := fuse2fsMount{Image: "/dev/fd/3", Dir: dir, ReadOnly: req.ReadOnly, Offset: req.Offset}
	if req.Offset == 0 && req.SizeLimit == 0 {
		// A whole ubd disk: fuse2fs's 4 KiB block I/O goes through the
		// export's page-cached name, as for a COW root (fuse2fs is then
		// the disk's only user: the guest's loop device is emulated).
		if p := m.k.cachedExport(req.File); p != "" {
			fm.Image, fm.Name = p, "/dev/fd/3"
		}
	}
	cmd := exec.Command(m.fuse2fs, fm.args()...)
	cmd.ExtraFiles = []*os.File{req.File}
	var msgs childrole.Output
	cmd.Stdout, cmd.Stderr = &msgs, &msgs
	// No parent-death signal: if K dies the guest dies with it, its mount
	// namespace goes and fuse2fs flushes and exits on its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fuse2fs: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err == nil && st.Dev != before.Dev {
			break
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("fuse2fs exited before the mount appeared: %s", strings.TrimSpace(msgs.String()))
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, errors.New("fuse2fs: mount did not appear in 20s")
		}
	}
	tfd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	unix.Unmount(dir, unix.MNT_DETACH)
	if err != nil {
		<-exited
		return nil, os.NewSyscallError("open_tree", err)
	}
	return &mountemu.Image{
		Tree: os.NewFile(uintptr(tfd), "fuse2fs-tree"),
		Wait: func(d time.Duration) bool {
			select {
			case <-exited:
				return true
			case <-time.After(d):
				return false
			}
		},
		Stop: func() { cmd.Process.Signal(syscall.SIGTERM) },
	}, nil
}

// cachedExport returns the page-cached name (blockfuse.Cached) of the ubd
// disk or partition whose export f is, or "" when f is neither.
func (k *kernel) cachedExport(f *os.File) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ""
	}
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	if k.blocks == nil {
		return ""
	}
	if d, ok := k.blocks.Device(st.Dev, st.Ino); ok {
		if p, err := k.blocks.Cached(d.Name()); err == nil {
			return p
		}
	}
	return ""
}

// plainImage returns the host path of the image behind f and its unit
// when f is the export of a ubd disk that is a plain image file (no COW),
// else "".
func (k *kernel) plainImage(f *os.File) (string, int) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", 0
	}
	for _, d := range k.plan.Disks {
		if d.IsDir || d.Backing != "" || k.cow[d.Unit] {
			continue
		}
		var ds unix.Stat_t
		if unix.Stat(filepath.Join(k.plan.WorkDir, "disks", plan.DiskName(d.Unit)), &ds) == nil && ds.Dev == st.Dev && ds.Ino == st.Ino {
			return d.File, d.Unit
		}
	}
	return "", 0
}

// setNativeMounted marks a disk as mounted by the host kernel (or no
// longer): its export then refuses writes.
func (k *kernel) setNativeMounted(unit int, on bool) {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	if k.blocks != nil {
		if err := k.blocks.SetMounted(plan.DiskName(unit), on); err != nil {
			k.logf("ubd%c: %v", 'a'+unit, err)
		}
	}
}

// diskIDs lists the ubd disks and their partitions for the mount
// emulator's busy check: each disk by its export in the guest and its host
// files, each partition by its export; the root disk is busy (K mounted
// it) unless it is read-only.
func (k *kernel) diskIDs() []mountemu.DiskIDs {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	var out []mountemu.DiskIDs
	export := func(name string) []mountemu.FileID {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(k.diskDir, name), &st) != nil {
			return nil
		}
		return []mountemu.FileID{{Dev: st.Dev, Ino: st.Ino}}
	}
	for unit := range k.ubd {
		e := mountemu.DiskIDs{Index: unit, Disk: unit, Name: plan.DiskName(unit)}
		e.IDs = export(e.Name)
		for _, id := range k.idents[unit] {
			e.IDs = append(e.IDs, mountemu.FileID{Dev: id.Dev, Ino: id.Ino})
		}
		r := k.plan.Root
		e.Busy = k.rootHeld && r.Kind == "image" && r.Unit == unit && !r.ReadOnly
		out = append(out, e)
		if k.blocks == nil {
			continue
		}
		for _, p := range k.blocks.Partitions(e.Name) {
			out = append(out, mountemu.DiskIDs{Index: (unit+1)*1000 + p.Number, Disk: unit, Part: p.Number, Name: p.Name, IDs: export(p.Name)})
		}
	}
	return out
}
