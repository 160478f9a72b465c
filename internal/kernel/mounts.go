package kernel

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

	"golang.org/x/sys/unix"

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
		k.logf("hostfs: host directories are mounted below %s", root)
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
	mk := func(name string) string {
		p := filepath.Join(loops, name)
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o660); err == nil {
			f.Close()
		}
		return p
	}
	cfg := mountemu.Config{HostfsRoot: root, LoopControl: mk("loop-control"), MountImage: m.mountImage,
		Logf: func(format string, args ...any) { k.logf(format, args...) }}
	for i := 0; i < numLoops; i++ {
		cfg.Loops = append(cfg.Loops, mk(fmt.Sprintf("loop%d", i)))
	}
	srv, err := mountemu.NewServer(cfg)
	if err != nil {
		k.logf("mount emulation off: %v", err)
		return nil
	}
	m.srv = srv
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		k.logf("mount emulation off: %v", os.NewSyscallError("socketpair", err))
		return nil
	}
	m.guestEnd, m.kEnd = os.NewFile(uintptr(fds[0]), "mountemu"), os.NewFile(uintptr(fds[1]), "mountemu-k")
	gp.Devices["loop-control"] = cfg.LoopControl
	for i, p := range cfg.Loops {
		gp.Devices[fmt.Sprintf("loop%d", i)] = p
	}
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
}

// mountImage mounts an ext2/3/4 image with fuse2fs and returns it as a
// detached tree.
func (m *mountEmu) mountImage(req mountemu.ImageRequest) (*mountemu.Image, error) {
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
	opts := "allow_other,suid,dev"
	if req.ReadOnly {
		opts += ",ro"
	}
	if req.Offset != 0 {
		opts += ",offset=" + strconv.FormatUint(req.Offset, 10)
	}
	cmd := exec.Command(m.fuse2fs, "/dev/fd/3", dir, "-f", "-o", opts)
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
