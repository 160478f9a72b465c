//go:build linux

package blockfuse

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/umlkit/umlkit/internal/procstatus"
)

// Attr is the owner, group and permission bits an exported file shows, in
// the ids of the user namespace that mounted the export (for K: the
// guest's), as a device node has them.
type Attr struct {
	Uid, Gid uint32
	Mode     uint32 // permission bits only (07777)
}

// DiskGID is the group "disk" of Debian (and of most distributions), which
// owns block devices.
const DiskGID = 6

// DefaultAttr is what every exported file starts with: root:disk 0660, as
// devtmpfs and udev give the ubd and loop devices and /dev/loop-control.
var DefaultAttr = Attr{Uid: 0, Gid: DiskGID, Mode: 0o660}

// Access bits, as in the permission triplets.
const (
	mayWrite = 2
	mayRead  = 4
)

// Capability numbers (linux/capability.h).
const (
	capChown         = 0
	capDacOverride   = 1
	capDacReadSearch = 2
	capFowner        = 3
)

// creds are a caller's credentials as the checks need them, in the
// export's user namespace. caps are the effective capabilities and count
// only when the caller is in that namespace itself (capabilities held in
// a namespace the guest made give no say over the guest's files).
type creds struct {
	uid, gid uint32
	groups   []uint32
	caps     uint64
}

func (c *creds) inGroup(gid uint32) bool {
	if c.gid == gid {
		return true
	}
	for _, g := range c.groups {
		if g == gid {
			return true
		}
	}
	return false
}

func (c *creds) capable(n uint) bool { return c.caps&(1<<n) != 0 }

// permits reports whether c may open a file with attributes a for want
// (mayRead|mayWrite), by Linux's rules for a non-directory
// (generic_permission): the owner's, the group's or the others' bits —
// exactly one class — then CAP_DAC_OVERRIDE, or CAP_DAC_READ_SEARCH for a
// read.
func permits(a Attr, c *creds, want uint32) bool {
	bits := a.Mode
	switch {
	case c.uid == a.Uid:
		bits >>= 6
	case c.inGroup(a.Gid):
		bits >>= 3
	}
	if bits&want == want {
		return true
	}
	if c.capable(capDacOverride) {
		return true
	}
	return want == mayRead && c.capable(capDacReadSearch)
}

// mayChange reports whether c may change a by in (chmod, chown, chgrp), by
// Linux's rules (chown_ok, chgrp_ok, inode_owner_or_capable). A change
// that only clears the set-id bits is what the kernel asks on a write by
// any writer, and is allowed.
func mayChange(a Attr, c *creds, in *fuse.SetAttrIn) bool {
	owner := c.uid == a.Uid || c.capable(capFowner)
	if uid, ok := in.GetUID(); ok && uid != a.Uid && !c.capable(capChown) {
		return false
	}
	if gid, ok := in.GetGID(); ok && gid != a.Gid {
		uid, ok := in.GetUID()
		sameOwner := !ok || uid == a.Uid
		if !c.capable(capChown) && !(c.uid == a.Uid && sameOwner && c.inGroup(gid)) {
			return false
		}
	}
	if mode, ok := in.GetMode(); ok && mode&0o7777 != a.Mode {
		const setID = syscall.S_ISUID | syscall.S_ISGID
		if !owner && mode&0o7777 != a.Mode&^setID {
			return false
		}
	}
	return true
}

// openWant is what an open with flags needs.
func openWant(flags uint32) uint32 {
	var want uint32
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		want = mayRead
	case syscall.O_WRONLY:
		want = mayWrite
	default:
		want = mayRead | mayWrite
	}
	if flags&syscall.O_TRUNC != 0 {
		want |= mayWrite
	}
	return want
}

// caller returns the credentials of the process behind a request. The ids
// come from the request (the kernel translates them into the export's user
// namespace); the supplementary groups and capabilities from
// /proc/PID/status, read only when full is set (the owner's check needs
// neither). The pid is one of K's pid namespace, an ancestor of the
// guest's. A status that does not match the request's ids (the caller is
// gone and its pid reused) gives no groups and no capabilities.
func (s *Server) caller(ctx context.Context, full bool) (*creds, bool) {
	fc, ok := fuse.FromContext(ctx)
	if !ok {
		return nil, false
	}
	c := &creds{uid: fc.Uid, gid: fc.Gid}
	if !full || fc.Pid == 0 {
		return c, true
	}
	pid := strconv.FormatUint(uint64(fc.Pid), 10)
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return c, true
	}
	st, err := procstatus.Parse(string(b))
	if err != nil || st.Uid[procstatus.FS] != c.uid || st.Gid[procstatus.FS] != c.gid {
		return c, true
	}
	c.groups = st.Groups
	if s.inUserNS("/proc/" + pid + "/ns/user") {
		c.caps = st.CapEff
	}
	return c, true
}

// inUserNS reports whether the namespace file p is the export's user
// namespace.
func (s *Server) inUserNS(p string) bool {
	var st syscall.Stat_t
	if s.userNS.Ino == 0 || syscall.Stat(p, &st) != nil {
		return false
	}
	return st.Dev == s.userNS.Dev && st.Ino == s.userNS.Ino
}

// idRange is one line of a uid_map or gid_map.
type idRange struct{ first, count uint64 }

// parseIDMap returns the ranges of ids a /proc/PID/uid_map or gid_map
// maps (the first column and the count).
func parseIDMap(b []byte) []idRange {
	var r []idRange
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		first, err1 := strconv.ParseUint(f[0], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 == nil && err2 == nil {
			r = append(r, idRange{first, count})
		}
	}
	return r
}

func mapped(r []idRange, id uint32) bool {
	for _, x := range r {
		if uint64(id) >= x.first && uint64(id) < x.first+x.count {
			return true
		}
	}
	return false
}
