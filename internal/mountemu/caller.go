package mountemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/procstatus"
)

// Who may have K mount on its behalf (issue: a caller in a nested user
// namespace showed a full CapEff that meant nothing over the guest):
// the caller must be in the guest's own user namespace (K's: G and the
// guest share it), hold CAP_SYS_ADMIN there, and its mount namespace must
// belong to that user namespace too. Anything else continues natively, so
// the host kernel gives the caller the answer it would give anyway.

// nsID identifies a namespace (the nsfs inode).
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{st.Dev, st.Ino}, nil
}

// ownerOfMountNS returns the user namespace owning pid's mount namespace.
func ownerOfMountNS(pid uint32) (nsID, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nsID{}, err
	}
	defer unix.Close(fd)
	ufd, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	if err != nil {
		return nsID{}, err
	}
	defer unix.Close(ufd)
	var st unix.Stat_t
	if err := unix.Fstat(ufd, &st); err != nil {
		return nsID{}, err
	}
	return nsID{st.Dev, st.Ino}, nil
}

// creds are a caller's file-system credentials as its status shows them
// (in the guest's user namespace, which is K's).
type creds struct {
	fsuid, fsgid int
	groups       []int
	capEff       uint64
}

// credsOf picks what asCaller needs from a parsed status.
func credsOf(st procstatus.Status) creds {
	c := creds{fsuid: int(st.Uid[procstatus.FS]), fsgid: int(st.Gid[procstatus.FS]), capEff: st.CapEff}
	for _, g := range st.Groups {
		c.groups = append(c.groups, int(g))
	}
	return c
}

// caller checks that pid may have K mount for it and returns its
// credentials; ok is false when K must not act (the caller then gets the
// kernel's own answer).
func (s *Server) caller(pid uint32) (c creds, ok bool) {
	if s.userNS == (nsID{}) {
		return creds{}, false
	}
	if ns, err := statNS(fmt.Sprintf("/proc/%d/ns/user", pid)); err != nil || ns != s.userNS {
		return creds{}, false
	}
	if owner, err := ownerOfMountNS(pid); err != nil || owner != s.userNS {
		return creds{}, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return creds{}, false
	}
	st, err := procstatus.Parse(string(b))
	if err != nil || !st.HasCap(unix.CAP_SYS_ADMIN) {
		return creds{}, false
	}
	return credsOf(st), true
}
