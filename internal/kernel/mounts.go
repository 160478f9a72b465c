package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	"github.com/umlkit/umlkit/internal/cmdline"
	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/guestinit"
	"github.com/umlkit/umlkit/internal/mountemu"
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
}

// hostfsOption returns the hostfs= root and whether append was asked for,
// from the guest command line (the last hostfs= wins).
func hostfsOption(line string) (root string, app bool) {
	var words []string
	for _, w := range strings.Fields(line) {
		if strings.HasPrefix(w, "hostfs=") {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return "", false
	}
	c, err := cmdline.Parse(words)
	if err != nil {
		return "", false
	}
	return c.HostfsRoot, c.HostfsApp
}

// prepareMounts makes the loop files under w and adds them to gp's
// devices. It returns nil (with a log line) when emulation is impossible.
func (k *kernel) prepareMounts(w string, gp *guestinit.Plan) *mountEmu {
	m := &mountEmu{k: k, stage: filepath.Join(w, "mnt"), done: make(chan struct{})}
	root, app := hostfsOption(k.plan.Cmdline)
	if root != "" {
		if abs, err := filepath.Abs(root); err == nil {
			root = abs
		}
	}
	if app {
		k.logf("hostfs: append is not supported (hostfs mounts are bind mounts of the host directory); files open normally")
	}
	loops := filepath.Join(w, "loop")
	if err := os.Mkdir(loops, 0o755); err != nil {
		k.logf("mount emulation off: %v", err)
		return nil
	}
	os.Mkdir(m.stage, 0o700)
	cfg := mountemu.Config{HostfsRoot: root, LoopControl: filepath.Join(loops, "loop-control"), MountImage: m.mountImage,
		Logf: func(format string, args ...any) { k.logf(format, args...) }, Disks: k.diskIDs}
	if k.plan.Shifted && k.helper != nil {
		cfg.OpenHostfs = k.helper.hostfs
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
	if m.guestEnd, m.kEnd, err = filePair(unix.SOCK_SEQPACKET, "mountemu", "mountemu-k"); err != nil {
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
		msg, files, _, err := fdpass.Recv(conn.(*net.UnixConn), 512, 1)
		if err != nil {
			if errors.Is(err, fdpass.ErrNoFD) && len(msg) > 0 {
				m.k.logf("mount emulation off: %s", msg)
			}
			return
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
	var msgs syncBuf
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

// The mount helper lets a guest of linux run as real root mount ext2/3/4
// natively, as the root disk is: K cannot (its user namespace gives it no
// say over the host's ext4 driver), so it sends the backing file to P over
// a SOCK_SEQPACKET pair ("mounthelper"), P puts it on a real loop device
// (autoclear) and makes a detached ext4 mount (as loopMount does for the
// root), and sends the mount fd back; K moves it into the guest.
//
// Request: "mount ro=0|1 path=IMAGE". Reply: "ok /dev/loopN" with the
// mount fd, or "err MESSAGE". Only plain image files of ubd disks go this
// way, by their host path: a loop device on the driver's FUSE export fails
// its reads (EIO), so COW disks and other files go through fuse2fs.

// mountHelper returns K's end of the helper pair and a function that stops
// P's server, or nil when P is not root (then K has no id block and needs
// no host help). UMLKIT_MOUNT_FUSE=1 refuses the native mounts (fuse2fs
// instead); the other requests (hostside.go) are always served.
func (m *machine) mountHelper() (*os.File, func()) {
	native := os.Getenv("UMLKIT_MOUNT_FUSE") == ""
	if m.ids == nil {
		return nil, nil
	}
	pf, kf, err := filePair(unix.SOCK_SEQPACKET, "mounthelper-p", "mounthelper")
	if err != nil {
		m.logf("mount helper: %v (guest mounts go through fuse2fs)", err)
		return nil, nil
	}
	c, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		kf.Close()
		return nil, nil
	}
	conn := c.(*net.UnixConn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.serveMountHelper(conn, native)
	}()
	return kf, func() {
		kf.Close()
		conn.Close()
		<-done
	}
}

func (m *machine) serveMountHelper(conn *net.UnixConn, native bool) {
	for {
		msg, files, _, err := fdpass.Recv(conn, 4352, 1)
		if err != nil && !errors.Is(err, fdpass.ErrNoFD) {
			return
		}
		var in *os.File
		if len(files) > 0 {
			in = files[0]
		}
		if reply, f, ok := m.serveHostRequest(string(msg), in); ok {
			if f != nil {
				fdpass.Send(conn, []byte(reply), f)
				f.Close()
			} else {
				fdpass.Send(conn, []byte(reply))
			}
			continue
		}
		req, path, _ := strings.Cut(string(msg), " path=")
		if len(files) != 0 || !native || !strings.HasPrefix(req, "mount ") || !filepath.IsAbs(path) {
			for _, f := range files {
				f.Close()
			}
			fdpass.Send(conn, []byte("err bad request"))
			continue
		}
		ro := strings.Contains(req, "ro=1")
		flags := os.O_RDWR
		if ro {
			flags = os.O_RDONLY
		}
		img, err := m.openForKernel(path, flags) // only this machine's disks
		if err != nil {
			fdpass.Send(conn, []byte("err "+err.Error()))
			continue
		}
		mfd, loop, err := loopMountFile(img, ro)
		img.Close()
		if err == nil {
			if err = m.idmap(mfd, false); err != nil {
				mfd.Close()
			}
		}
		if err != nil {
			fdpass.Send(conn, []byte("err "+err.Error()))
			continue
		}
		fdpass.Send(conn, []byte("ok "+loop), mfd)
		mfd.Close()
	}
}

// helperClient is K's end of the mount helper.
type helperClient struct {
	mu   sync.Mutex // one request at a time
	conn *net.UnixConn
}

func newHelperClient(f *os.File) *helperClient {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil
	}
	return &helperClient{conn: c.(*net.UnixConn)}
}

// mount asks P for a native mount of the image file at path.
func (h *helperClient) mount(path string, ro bool) (*mountemu.Image, error) {
	req := "mount ro=0 path=" + path
	if ro {
		req = "mount ro=1 path=" + path
	}
	msg, tree, err := h.ask(req)
	if err == nil && tree == nil {
		err = errors.New("mount helper: no mount in the reply")
	}
	if err != nil {
		return nil, err
	}
	loop := strings.TrimPrefix(msg, "ok ")
	return &mountemu.Image{
		Tree: tree,
		Wait: func(d time.Duration) bool { return waitLoopFree(loop, d) },
		Stop: func() {},
	}, nil
}

// ask sends one request and returns the reply and the fd that came with
// it (nil if none).
func (h *helperClient) ask(req string) (string, *os.File, error) { return h.askWith(req, nil) }

// askWith is ask with an fd for P (nil for none).
func (h *helperClient) askWith(req string, f *os.File) (string, *os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var err error
	if f != nil {
		err = fdpass.Send(h.conn, []byte(req), f)
	} else {
		err = fdpass.Send(h.conn, []byte(req))
	}
	if err != nil {
		return "", nil, err
	}
	h.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	msg, files, _, err := fdpass.Recv(h.conn, 4096, 1)
	if rest, ok := strings.CutPrefix(string(msg), "err "); ok {
		return "", nil, helperError(rest)
	}
	if err != nil && !errors.Is(err, fdpass.ErrNoFD) { // replies without an fd are fine
		return "", nil, fmt.Errorf("host helper: %w", err)
	}
	if len(files) == 0 {
		return string(msg), nil, nil
	}
	return string(msg), files[0], nil
}

// xterm has P open an xterm line's terminal (hostside.go serveXterm): the
// reply comes on a private socket, so a slow emulator holds up no other
// request; closing done (or ctx ending first) tells P to close the
// terminal.
func (h *helperClient) xterm(ctx context.Context, serial bool, n int) (term, done *os.File, err error) {
	mine, theirs, err := filePair(unix.SOCK_SEQPACKET, "xterm", "xterm-p")
	if err != nil {
		return nil, nil, err
	}
	s := 0
	if serial {
		s = 1
	}
	_, _, err = h.askWith(fmt.Sprintf("xterm serial=%d n=%d", s, n), theirs)
	theirs.Close()
	if err != nil {
		mine.Close()
		return nil, nil, err
	}
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, nil, err
	}
	uc := c.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { uc.SetReadDeadline(time.Unix(1, 0)) })
	msg, files, _, err := fdpass.Recv(uc, 4096, 1)
	stop()
	if rest, ok := strings.CutPrefix(string(msg), "err "); ok {
		uc.Close()
		return nil, nil, errors.New(rest)
	}
	if err != nil || len(files) == 0 {
		uc.Close()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("xterm_open : os_rcv_fd: %w", ctx.Err())
		}
		return nil, nil, fmt.Errorf("xterm_open : os_rcv_fd failed: %v", err)
	}
	df, err := uc.File()
	uc.Close()
	if err != nil {
		files[0].Close()
		return nil, nil, err
	}
	return files[0], df, nil
}

// open has P open a disk file of this machine (ubd.Options.Open).
func (h *helperClient) open(name string, flags int) (*os.File, error) {
	_, f, err := h.ask(fmt.Sprintf("open flags=%d path=%s", flags, name))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if f == nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: unix.EIO}
	}
	// Name the file by its path, for the driver's messages.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name), nil
}

// hostfs has P make the idmapped tree of a hostfs mount.
func (h *helperClient) hostfs(path string, ro bool) (*os.File, error) {
	r := "0"
	if ro {
		r = "1"
	}
	_, f, err := h.ask("hostfs ro=" + r + " path=" + path)
	if err == nil && f == nil {
		err = unix.EIO
	}
	return f, err
}

// cachedExport returns the page-cached name (blockfuse.Cached) of the ubd
// disk whose export f is, or "" when f is not a disk's export.
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
	for unit := range k.ubd {
		var ds unix.Stat_t
		if unix.Stat(filepath.Join(k.diskDir, diskName(unit)), &ds) == nil && ds.Dev == st.Dev && ds.Ino == st.Ino {
			if p, err := k.blocks.Cached(diskName(unit)); err == nil {
				return p
			}
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
		if unix.Stat(filepath.Join(k.plan.WorkDir, "disks", diskName(d.Unit)), &ds) == nil && ds.Dev == st.Dev && ds.Ino == st.Ino {
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
		if err := k.blocks.SetMounted(diskName(unit), on); err != nil {
			k.logf("ubd%c: %v", 'a'+unit, err)
		}
	}
}

// diskIDs lists the ubd disks for the mount emulator's busy check: each by
// its export in the guest and its host files; the root disk is busy (K
// mounted it) unless it is read-only.
func (k *kernel) diskIDs() []mountemu.DiskIDs {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	var out []mountemu.DiskIDs
	for unit := range k.ubd {
		e := mountemu.DiskIDs{Index: unit, Name: diskName(unit)}
		var st unix.Stat_t
		if unix.Stat(filepath.Join(k.diskDir, diskName(unit)), &st) == nil {
			e.IDs = append(e.IDs, mountemu.FileID{Dev: st.Dev, Ino: st.Ino})
		}
		for _, id := range k.idents[unit] {
			e.IDs = append(e.IDs, mountemu.FileID{Dev: id.Dev, Ino: id.Ino})
		}
		r := k.plan.Root
		e.Busy = r.Kind == "image" && r.Unit == unit && !r.ReadOnly
		out = append(out, e)
	}
	return out
}
