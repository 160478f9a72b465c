//go:build linux

package tuntap

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// OpenInNetNS is Open with the interface created in the network namespace
// netns (a path such as /proc/<pid>/ns/net or /run/netns/<name>). The
// calling goroutine's thread enters netns for the TUNSETIFF only and comes
// back; if it cannot come back the thread is discarded rather than reused.
// The returned device stays in netns.
func OpenInNetNS(netns string, c Config) (*Device, error) {
	target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: netns, Err: err}
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, &os.PathError{Op: "open", Path: "/proc/thread-self/ns/net", Err: err}
	}
	defer unix.Close(self)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, os.NewSyscallError(fmt.Sprintf("setns %s", netns), err)
	}
	d, openErr := Open(c)
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it exits with the goroutine.
		if d != nil {
			d.Close()
		}
		return nil, os.NewSyscallError("setns back", err)
	}
	runtime.UnlockOSThread()
	return d, openErr
}
