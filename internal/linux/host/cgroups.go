package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/umlkit/umlkit/internal/cgroup"
)

// The machine's host cgroups (freezer.go, memcg.go) are made beside the
// cgroup linux starts in. Before that, the "host cgroups" stage
//   - removes what killed instances left: this umid's machine cgroups
//     (the umid claim shows their linux is gone; what their guest left is
//     killed), and every empty machine cgroup of the user's beside ours
//     older than cgroup.MinAge (internal/cgroup's sweep);
//   - run by an ordinary user whose cgroup it may not write (a plain `su`
//     or ssh login: the session's cgroup is root's), asks the user's
//     systemd manager for a transient scope with Delegate=yes and moves
//     into it, as rootless podman does. Where that fails, the freezer
//     stage says so in one line and the plan tells G, which refuses to
//     start systemd (it would freeze: "Failed to create /init.scope
//     control group").
//
// `linux --cleanup` (cleanupMain) sweeps every hierarchy, stale umid
// directories and, for root, free id blocks.

// scopeTimeout bounds the exchange with the user's systemd manager.
const scopeTimeout = 20 * time.Second

// sameUmidWait bounds the wait for this umid's killed instance to finish
// dying (its guard powers the guest off after K died).
const sameUmidWait = 2 * time.Second

// noCgroup says why the machine has no cgroup of its own and what would
// give it one.
type noCgroup struct {
	why, fix string
}

func (n *noCgroup) String() string {
	if n.fix == "" {
		return n.why
	}
	return n.why + "; " + n.fix
}

// noV2Fix is the advice for a host without a unified hierarchy.
const noV2Fix = "root may mount one: mount -t cgroup2 none /sys/fs/cgroup/unified"

// userFix is the advice for an ordinary user without a writable cgroup.
func userFix() string {
	return fmt.Sprintf("start linux in a cgroup delegated to uid %d, e.g. systemd-run --user --scope -p Delegate=yes linux ...", os.Geteuid())
}

// hostCgroups is the "host cgroups" stage.
func (m *machine) hostCgroups(ctx context.Context) (func(), error) {
	m.sweepCgroups()
	if os.Geteuid() == 0 {
		return nil, nil
	}
	mnt, err := cgroup.V2Mount()
	if err != nil {
		m.noCg = &noCgroup{why: err.Error(), fix: noV2Fix}
		return nil, nil
	}
	self, err := cgroup.Self()
	if err != nil || self.V2 == "" {
		m.noCg = &noCgroup{why: "linux is in no cgroup v2 (/proc/self/cgroup)"}
		return nil, nil
	}
	if cgroup.Writable(filepath.Join(mnt, self.V2)) == nil {
		return nil, nil
	}
	why := fmt.Sprintf("linux's cgroup %s is not writable by uid %d", self.V2, os.Geteuid())
	unit := cgroup.ScopeUnit(m.dir.Umid, os.Getpid())
	sctx, cancel := context.WithTimeout(ctx, scopeTimeout)
	defer cancel()
	via, err := cgroup.StartScope(sctx, unit, "User-Mode Linux (umlkit) "+m.dir.Umid, os.Getpid(), os.Getenv)
	if err != nil {
		m.noCg = &noCgroup{why: why + " and " + err.Error(), fix: userFix()}
		return nil, nil
	}
	now, err := cgroup.Self()
	switch {
	case err != nil || filepath.Base(now.V2) != unit:
		m.noCg = &noCgroup{why: fmt.Sprintf("%s and the systemd user manager at %s did not move it into %s", why, via, unit), fix: userFix()}
	case cgroup.Writable(filepath.Join(mnt, now.V2)) != nil:
		m.noCg = &noCgroup{why: fmt.Sprintf("%s and its scope %s is not writable either", why, now.V2), fix: userFix()}
	default:
		// It stays there until linux exits; the manager removes the scope
		// once it is empty.
		m.logf("cgroup: %s: linux runs in %s, a scope with Delegate=yes from the systemd user manager at %s", why, now.V2, via)
	}
	return nil, nil
}

// sweepCgroups removes the machine cgroups killed instances left beside
// linux's cgroup, in the unified hierarchy first (killing a dead guest
// there empties the v1 memory cgroup of the same machine).
func (m *machine) sweepCgroups() {
	self, err := cgroup.Self()
	if err != nil {
		return
	}
	type home struct {
		dir string
		v2  bool
	}
	var homes []home
	if mnt, err := cgroup.V2Mount(); err == nil && self.V2 != "" {
		homes = append(homes, home{filepath.Join(mnt, self.V2), true})
	}
	if mnt, err := cgroup.V1Mount("memory"); err == nil && self.V1["memory"] != "" {
		homes = append(homes, home{filepath.Join(mnt, self.V1["memory"]), false})
	}
	uid := os.Geteuid()
	same := &cgroup.Sweeper{UID: uid, MinAge: time.Second, Kill: true}
	for _, h := range homes {
		dir := filepath.Join(h.dir, cgroup.Prefix+m.dir.Umid)
		for deadline := time.Now().Add(sameUmidWait); ; time.Sleep(50 * time.Millisecond) {
			r := same.One(dir, h.v2)
			if (r.Verdict != cgroup.Live && r.Verdict != cgroup.Young) || time.Now().After(deadline) {
				break
			}
		}
	}
	others := &cgroup.Sweeper{UID: uid, MinAge: cgroup.MinAge}
	for _, h := range homes {
		others.Children(h.dir, h.v2)
	}
}
