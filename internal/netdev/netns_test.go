//go:build linux

package netdev

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// lockInNetNS moves the calling goroutine's thread into network namespace
// ns for good (the goroutine must exit afterwards; the locked thread is
// then discarded by the runtime).
func lockInNetNS(t *testing.T, ns string) {
	runtime.LockOSThread()
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		t.Error(err)
	}
}
