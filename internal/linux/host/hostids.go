package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/procstatus"
)

// Started by root, linux never lets guest root be host root (with an
// identity map a guest could write host-wide sysctls such as core_pattern
// and run code as host root). Each machine gets its own block of 65536
// unprivileged host ids, as rootless container engines and podman's
// --userns=auto do: guest id N is host id base+N. The blocks come from the
// /etc/subuid and /etc/subgid ranges of the user "umlkit" when it has them
// (the admin's choice, as for podman's "containers" user), otherwise from
// the built-in range 1879048192-2147483647 (0x70000000-0x7fffffff, 4096
// blocks), which no distribution allocates. A block is held by an flock on
// /run/umlkit/ids/N.lock for the life of linux, so concurrent machines never
// share one and a killed machine's block is free again at once.
//
// The machine's host-side files live in /run/umlkit/N (mode 0700, owned by
// the block's root): K's work directory, and private /dev/fuse and
// /dev/net/tun nodes owned by the block's root that K binds over its own
// /dev names, so FUSE exports, fuse2fs and guest taps work where the
// host's nodes are root-only (0600) as well as where they are 0666.

const (
	idBlockSize    = 65536
	builtinIDBase  = 0x70000000
	builtinIDCount = 0x10000000
	idUser         = "umlkit"
)

// idStateDir holds the block locks and the machines' directories (a
// variable for tests).
var idStateDir = "/run/umlkit"

// idBlock is one machine's host id block and host-side directory.
type idBlock struct {
	uid, gid int      // host ids of guest root
	slot     int      // block number
	lock     *os.File // holds the block
	dir      string   // /run/umlkit/N
	work     string   // dir/work: K's work directory
	dev      string   // dir/dev: the private device nodes
}

// idRanges returns the uid and gid ranges blocks are cut from.
func idRanges() (u, g subIDRange, source string) {
	su, ok1 := subIDs("/etc/subuid", idUser, -1)
	sg, ok2 := subIDs("/etc/subgid", idUser, -1)
	if ok1 && ok2 && su.count >= idBlockSize && sg.count >= idBlockSize {
		return su, sg, "/etc/subuid and /etc/subgid of user " + idUser
	}
	r := subIDRange{builtinIDBase, builtinIDCount}
	return r, r, "built-in range"
}

// allocIDs takes the first free block and prepares its directory.
func allocIDs() (*idBlock, error) {
	u, g, source := idRanges()
	n := min(u.count, g.count) / idBlockSize
	locks := filepath.Join(idStateDir, "ids")
	if err := os.MkdirAll(locks, 0o700); err != nil {
		return nil, err
	}
	os.Chmod(idStateDir, 0o711) // block roots traverse it to their own dir
	for slot := 0; slot < n; slot++ {
		f, err := os.OpenFile(filepath.Join(locks, strconv.Itoa(slot)+".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		b := &idBlock{uid: u.start + slot*idBlockSize, gid: g.start + slot*idBlockSize, slot: slot, lock: f}
		// A machine whose linux was killed (kill -9 of P and K) may have
		// left guest processes behind (killed before its guard started):
		// nothing of it may live on into the next machine with these ids.
		b.killStrays()
		if err := b.prepare(); err != nil {
			b.Close()
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("no free id block in the %s (%d machines run as root already)", source, n)
}

// prepare makes dir, work and dev, owned by the block's root.
func (b *idBlock) prepare() error {
	b.dir = filepath.Join(idStateDir, strconv.Itoa(b.slot))
	os.RemoveAll(b.dir) // a killed machine's leftovers
	b.work = filepath.Join(b.dir, "work")
	b.dev = filepath.Join(b.dir, "dev")
	for _, d := range []string{b.dir, b.work, b.dev} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := os.Chown(d, b.uid, b.gid); err != nil {
			return err
		}
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(b.dev, &fs); err == nil && fs.Flags&unix.ST_NODEV != 0 {
		b.dev = "" // device nodes would not open here; K uses the host's
		return nil
	}
	for _, n := range plan.DevNodes {
		p := filepath.Join(b.dev, n.Name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(n.Major, n.Minor))); err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		if err := os.Chown(p, b.uid, b.gid); err != nil {
			return err
		}
	}
	return nil
}

// killStrays SIGKILLs every process running with a uid of the block and
// waits (bounded) until none is left.
func (b *idBlock) killStrays() {
	for try := 0; try < 50; try++ {
		if killUIDRange(b.uid, b.uid+idBlockSize) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killUIDRange SIGKILLs the processes whose real or effective uid is in
// [lo, hi) and returns how many it found.
func killUIDRange(lo, hi int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		st, err := procstatus.Parse(string(b))
		if err != nil {
			continue
		}
		for _, id := range []uint32{st.Uid[procstatus.Real], st.Uid[procstatus.Effective]} {
			if int(id) >= lo && int(id) < hi {
				unix.Kill(pid, unix.SIGKILL)
				n++
				break
			}
		}
	}
	return n
}

// Close removes the block's directory and frees the block. (What a guest
// leaves behind is killed by the freezer cgroup's Close, and at the next
// allocation of the block by killStrays.)
func (b *idBlock) Close() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
	b.lock.Close()
}

func (b *idBlock) String() string {
	return fmt.Sprintf("uid map: guest 0-%d = host uids %d-%d, gids %d-%d (id block %d; guest root is not host root)",
		idBlockSize-1, b.uid, b.uid+idBlockSize-1, b.gid, b.gid+idBlockSize-1, b.slot)
}

// delegateCgroup gives the block's root guest/ and the files a guest's own
// init (systemd) writes to make and fill its cgroups below it, as under a
// delegated unit. P moves G into guest/ (hostguard.go); the guest gets no
// write access to the parent's cgroup.procs, so it cannot leave guest/.
func (b *idBlock) delegateCgroup(c *freezeCgroup) error {
	if c == nil {
		return nil
	}
	var errs []error
	chown := func(p string) {
		if err := os.Chown(p, b.uid, b.gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	chown(c.guest)
	for _, f := range []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"} {
		chown(filepath.Join(c.guest, f))
	}
	return errors.Join(errs...)
}

// freedBlock is what sweepIDBlocks did for one id block.
type freedBlock struct {
	slot   int
	killed int    // stray processes killed
	dir    string // the directory removed, or ""
	err    error
}

// sweepIDBlocks frees what machines killed with SIGKILL left of their id
// blocks (linux --cleanup, as root): for each block no machine holds
// (its lock is free; the sweep holds it meanwhile), the processes still
// running with the block's ids and its /run/umlkit/N directory.
func sweepIDBlocks() []freedBlock {
	u, _, _ := idRanges()
	locks, _ := filepath.Glob(filepath.Join(idStateDir, "ids", "*.lock"))
	var out []freedBlock
	for _, l := range locks {
		slot, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(l), ".lock"))
		if err != nil || slot < 0 || slot >= u.count/idBlockSize {
			continue
		}
		f, err := os.OpenFile(l, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // a live machine's
			continue
		}
		fb := freedBlock{slot: slot}
		lo := u.start + slot*idBlockSize
		for try := 0; try < 50; try++ {
			n := killUIDRange(lo, lo+idBlockSize)
			if n == 0 {
				break
			}
			if try == 0 {
				fb.killed = n
			}
			time.Sleep(20 * time.Millisecond)
		}
		dir := filepath.Join(idStateDir, strconv.Itoa(slot))
		if _, err := os.Lstat(dir); err == nil {
			if fb.err = os.RemoveAll(dir); fb.err == nil {
				fb.dir = dir
			}
		}
		f.Close()
		if fb.killed > 0 || fb.dir != "" || fb.err != nil {
			out = append(out, fb)
		}
	}
	return out
}
