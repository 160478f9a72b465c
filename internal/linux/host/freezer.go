package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/umlkit/umlkit/internal/cgroup"
	"github.com/umlkit/umlkit/internal/sys"
)

// freezeCgroup is the cgroup v2 pair that lets the mconsole's stop/go
// freeze the guest without any signal the guest could see: P makes
// <its cgroup>/umlkit-<umid> and joins it, the guest's processes live in its
// child "guest" (G moves itself there before it execs init; the guard stays
// outside, and so do P and K), and cgroup.freeze of the child freezes them.
// The v2 hierarchy may be the unified one at /sys/fs/cgroup or, on a hybrid
// host, /sys/fs/cgroup/unified; the freezer needs no controller.
type freezeCgroup struct {
	dir   string // umlkit-<umid>
	guest string // dir/guest
	home  string // P's original cgroup
}

// newFreezeCgroup makes the machine's freezer cgroups and moves P in.
func newFreezeCgroup(name string) (*freezeCgroup, error) {
	mnt, err := cgroup.V2Mount()
	if err != nil {
		return nil, err
	}
	self, err := cgroup.Self()
	if err != nil || self.V2 == "" {
		return nil, errors.New("no cgroup v2 entry in /proc/self/cgroup")
	}
	home := filepath.Join(mnt, self.V2)
	dir, err := makeMachineCgroup(home, name)
	if err != nil {
		return nil, err
	}
	c := &freezeCgroup{dir: dir, guest: filepath.Join(dir, cgroup.GuestDir), home: home}
	if err := os.Mkdir(c.guest, 0o755); err != nil {
		c.remove()
		return nil, fmt.Errorf("create %s: %w", c.guest, errors.Unwrap(err))
	}
	if _, err := os.Stat(filepath.Join(c.guest, "cgroup.freeze")); err != nil {
		c.remove()
		return nil, errors.New("the kernel has no cgroup v2 freezer")
	}
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		c.remove()
		return nil, fmt.Errorf("join %s: %w", c.dir, errors.Unwrap(err))
	}
	return c, nil
}

// makeMachineCgroup makes the machine cgroup of umid below home:
// umlkit-UMID, or umlkit-UMID-PID when a live machine of another uml_dir
// holds that name (the start's sweep removed a dead machine's).
func makeMachineCgroup(home, umid string) (string, error) {
	dir := filepath.Join(home, cgroup.Prefix+umid)
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		dir = fmt.Sprintf("%s-%d", dir, os.Getpid())
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", dir, errors.Unwrap(err))
	}
	// Tells a sweep whether this machine is alive (best effort: without
	// the mark it judges by the processes in the cgroup).
	cgroup.MarkOwner(dir)
	return dir, nil
}

// Freeze freezes (or thaws) the guest's processes and waits up to a second
// for the kernel to report the new state. A nil c has no freezer.
func (c *freezeCgroup) Freeze(on bool) error {
	if c == nil {
		return errors.New("no freezer cgroup")
	}
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(c.guest, "cgroup.freeze"), []byte(v), 0o644); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(c.guest, "cgroup.events"))
		if err != nil || strings.Contains(string(b), "frozen "+v) {
			break
		}
	}
	return nil
}

// Close kills whatever is left in the guest's cgroup (a guest root can
// kill the guard that would have powered it off), moves P back home and
// removes the cgroups.
func (c *freezeCgroup) Close() {
	if os.WriteFile(filepath.Join(c.guest, "cgroup.kill"), []byte("1"), 0o644) == nil {
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, err := os.ReadFile(filepath.Join(c.guest, "cgroup.events")); err != nil || strings.Contains(string(b), "populated 0") {
				break
			}
		}
	}
	os.WriteFile(filepath.Join(c.home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	c.remove()
}

// remove removes the machine's cgroups depth first: a guest's init that
// manages cgroups (systemd) leaves its own below guest/ (init.scope, ...),
// and a directory with children cannot go, which would leave the next boot
// of the same umid without its cgroups.
func (c *freezeCgroup) remove() {
	sys.RmdirTree(c.dir)
}
