package mountemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// ImageRequest asks the image mounter for a file system on File.
type ImageRequest struct {
	File      *os.File // the backing file (K's dup; the mounter must not close it)
	Offset    uint64   // lo_offset
	SizeLimit uint64   // lo_sizelimit (0 = to the end)
	ReadOnly  bool
	FSType    string
}

// Image is a mounted file system image.
type Image struct {
	// Tree is a detached mount (open_tree/fsmount) that the Server moves
	// into the guest and then closes.
	Tree *os.File
	// Wait waits up to d for the image's server to exit once the last
	// mount is gone; it reports whether it did.
	Wait func(d time.Duration) bool
	// Stop asks the server to flush and exit (used at shutdown).
	Stop func()
}

// Config is what the Server needs from K.
type Config struct {
	// HostfsRoot is the hostfs= prefix ("" = the host's /).
	HostfsRoot string
	// LoopControl and Loops are K's paths of the files bound onto the
	// guest's /dev/loop-control and /dev/loop0..N.
	LoopControl string
	Loops       []string
	// MountImage mounts an ext2/3/4 image; nil refuses such mounts.
	MountImage func(ImageRequest) (*Image, error)
	// Logf writes a boot-log line.
	Logf func(format string, args ...any)
	// Disks are the machine's ubd disks, each by every identity its data
	// can be reached under (the guest's /dev/ubdX export, the host image
	// behind it, a COW disk's backing file): a read-write mount of a disk
	// that is mounted read-write already (Busy: the root) is refused with
	// EBUSY, since two file system servers writing one disk corrupt it.
	// Called at each read-write mount (disks come and go with hot-plug).
	Disks func() []DiskIDs
	// Block, when set, returns the device file K serves with device
	// number dev and inode ino (a ubd disk, a partition, a loop file), to
	// answer the block ioctls on it; ok false for any other file.
	Block func(dev, ino uint64) (BlockDevice, bool)
	// Sysinfo, when set, gives the figures sysinfo(2) returns to the
	// guest (Install's trapSysinfo must have been true).
	Sysinfo func() (Sysinfo, error)
	// OpenHostfs, when set, makes the detached tree of a hostfs mount of
	// path (relative to HostfsRoot, resolved inside it) instead of K: used
	// when linux runs as root, whose host side must make the tree
	// (idmapped). K itself is then an unprivileged host uid.
	OpenHostfs func(path string, readOnly bool) (*os.File, error)
	// DevTree, when set, returns the detached tree of the machine's /dev
	// as G made it (nil while there is none): a devtmpfs mount gets a
	// recursive bind of it, so it shows the machine's devices and, like
	// Linux's single devtmpfs, the same files wherever it is mounted.
	DevTree func() *os.File
}

// FileID names a file by device and inode.
type FileID struct{ Dev, Ino uint64 }

// DiskIDs is one disk, or one partition of a disk, for Config.Disks. A
// read-write mount of a disk also excludes one of any of its partitions,
// and the reverse; partitions of one disk do not exclude each other.
type DiskIDs struct {
	Index int      // stable key, unique among disks and partitions
	Disk  int      // the disk (ubd unit) it is or belongs to
	Part  int      // partition number, 0 for the whole disk
	Name  string   // "ubda", "ubdb1", for the log
	IDs   []FileID // every identity of the disk's (partition's) data
	Busy  bool     // mounted read-write by K (the root file system)
}

type fileID struct{ dev, ino uint64 }

type loopDev struct {
	backing *os.File // nil when free
	id      fileID   // the backing file's identity (never stat'ed under mu: it may be ours)
	info    LoopInfo
	mounts  int // mounts of it in the guest
}

type mountRec struct {
	disk   int // Config.Disks index mounted read-write, or -1
	loop   int // -1 when not on a loop device
	image  *Image
	hostfs bool
	tree   bool // a copy of the guest's /proc with its submounts (mountProc)
}

// Server answers the guest's trapped calls.
type Server struct {
	cfg    Config
	nums   sysnums
	userNS nsID           // the guest's user namespace (K's own)
	ids    map[fileID]int // loop file -> index, control = -1
	wg     sync.WaitGroup
	close  sync.Once

	mu     sync.Mutex // guards loops, mounts
	loops  []loopDev
	mounts map[uint64]*mountRec // by guest mount id
	rw     map[int]int          // read-write mounts per DiskIDs.Index
}

// NewServer prepares a server. The loop files must exist when Serve starts
// (they may be exports of LoopFile and ControlFile).
func NewServer(cfg Config) (*Server, error) {
	if hostSysnums == nil {
		return nil, ErrUnsupportedArch
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	userNS, err := statNS("/proc/self/ns/user")
	if err != nil {
		return nil, fmt.Errorf("mount emulation: own user namespace: %w", err)
	}
	return &Server{cfg: cfg, nums: *hostSysnums, userNS: userNS, ids: map[fileID]int{}, loops: make([]loopDev, len(cfg.Loops)), mounts: map[uint64]*mountRec{}, rw: map[int]int{}}, nil
}

// identify records the loop files' identities (before serving: ids is
// read without a lock afterwards).
func (s *Server) identify() error {
	add := func(path string, idx int) error {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return &os.PathError{Op: "stat", Path: path, Err: err}
		}
		s.ids[fileID{st.Dev, st.Ino}] = idx
		return nil
	}
	if s.cfg.LoopControl != "" {
		if err := add(s.cfg.LoopControl, -1); err != nil {
			return err
		}
	}
	for i, p := range s.cfg.Loops {
		if err := add(p, i); err != nil {
			return err
		}
	}
	return nil
}

// Serve answers notifications from listener until the guest is gone (every
// filtered task exited) or Close. It takes ownership of listener.
func (s *Server) Serve(listener *os.File) error {
	if err := s.identify(); err != nil {
		s.logf("mount emulation: no loop devices: %v", err)
	}
	lis, err := sys.Pollable(listener, "seccomp-listener")
	if err != nil {
		listener.Close()
		return err
	}
	defer lis.Close()
	rc, err := lis.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, NotifSize)
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, 0); n == 0 {
				return false
			}
			if pfd[0].Revents&unix.POLLIN == 0 {
				rerr = io.EOF // POLLHUP: no task uses the filter any more
				return true
			}
			rerr = notifRecv(fd, buf)
			return true
		})
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr == unix.ENOENT || rerr == unix.EINTR:
			continue // the caller died before we took it
		case rerr != nil:
			return os.NewSyscallError("ioctl SECCOMP_IOCTL_NOTIF_RECV", rerr)
		}
		var n Notif
		n.UnmarshalBinary(buf)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r := s.handle(lis, &n)
			rc.Control(func(fd uintptr) {
				if err := notifSend(fd, encodeResp(n.ID, r)); err != nil && err != unix.ENOENT {
					s.cfg.Logf("mount emulation: reply to pid %d: %v", n.Pid, err)
				}
			})
		}()
	}
}

// Close waits for the calls in progress, then asks every image server to
// flush and exit and waits for them (bounded), and closes the loop backing
// files. The guest must be gone.
func (s *Server) Close() {
	s.close.Do(func() {
		s.wg.Wait()
		s.mu.Lock()
		recs := s.mounts
		s.mounts = map[uint64]*mountRec{}
		loops := s.loops
		s.loops = nil
		s.mu.Unlock()
		for _, r := range recs {
			if r.image == nil {
				continue
			}
			if !r.image.Wait(5 * time.Second) {
				r.image.Stop()
				if !r.image.Wait(20 * time.Second) {
					s.cfg.Logf("mount emulation: a file system server did not exit")
				}
			}
		}
		for _, l := range loops {
			if l.backing != nil {
				l.backing.Close()
			}
		}
	})
}

func (s *Server) handle(lis *os.File, n *Notif) Reply {
	valid := func() bool {
		ok := false
		if rc, err := lis.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { ok = notifIDValid(fd, n.ID) })
		}
		return ok
	}
	switch uint32(n.Nr) {
	case s.nums.mount:
		return s.mount(n, valid)
	case s.nums.umount2:
		return s.umount(n, valid)
	case s.nums.ioctl:
		return s.ioctl(n, valid)
	case s.nums.sysinfo:
		return s.sysinfo(n, valid)
	}
	return Reply{Continue: true}
}

// errno turns err into a reply.
func errno(err error) Reply {
	return Reply{Errno: int32(sys.ErrnoOf(err, unix.EIO))}
}

func (s *Server) logf(format string, args ...any) { s.cfg.Logf(format, args...) }

var errNotOurs = fmt.Errorf("not an emulated mount")
