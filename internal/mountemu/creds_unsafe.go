package mountemu

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// asCaller runs fn on the current (locked, guest worker) thread with the
// caller's file-system uid, gid, groups and effective capabilities, so
// every path it resolves and file it opens is checked as the kernel checks
// the caller; then it restores the thread's own (K's) credentials. Only the
// thread changes: setfsuid, setfsgid, setgroups and capset are per-thread
// system calls (the raw ones, not Go's all-threads wrappers).
func asCaller(c creds, fn func() error) error {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var own [2]unix.CapUserData
	if err := unix.Capget(&hdr, &own[0]); err != nil {
		return err
	}
	gids := make([]uint32, len(c.groups))
	for i, g := range c.groups {
		gids[i] = uint32(g)
	}
	var gp unsafe.Pointer
	if len(gids) > 0 {
		gp = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(gp), 0); e != 0 {
		return e
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(c.fsgid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(c.fsuid), 0, 0)
	eff := own
	eff[0].Effective &= uint32(c.capEff)
	eff[1].Effective &= uint32(c.capEff >> 32)
	// setfsuid away from 0 already cleared the file-system capabilities;
	// this takes away whatever else the caller lacks.
	if err := unix.Capset(&hdr, &eff[0]); err != nil {
		restoreCreds(&hdr, &own)
		return err
	}
	err := fn()
	restoreCreds(&hdr, &own)
	return err
}

// restoreCreds gives the thread K's capabilities back first (raising the
// effective set within the permitted one needs none), then its ids.
func restoreCreds(hdr *unix.CapUserHeader, own *[2]unix.CapUserData) {
	h := *hdr
	unix.Capset(&h, &own[0])
	unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
	unix.RawSyscall(unix.SYS_SETFSGID, 0, 0, 0)
	unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
}
