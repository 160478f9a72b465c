package guest

import (
	"os"
	"runtime"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/mountemu"
)

// installMountFilter installs the guest's mount filter on this thread (the
// one that execs init, which makes it the guest's) and sends the listener
// to K over sock, with dev (a detached copy of the guest's /dev, for K's
// devtmpfs mounts) when there is one; on failure it sends the reason
// instead, for K's log. Neither reaches the guest. With sysinfo, K answers
// sysinfo(2) too (the machine's memory).
func installMountFilter(sock, dev *os.File, sysinfo bool) {
	defer sock.Close()
	runtime.LockOSThread() // never unlocked: the exec happens on this thread
	lis, err := mountemu.Install(sysinfo)
	if err != nil {
		fdpass.SendRaw(int(sock.Fd()), nil, []byte(err.Error()))
		return
	}
	defer lis.Close()
	fds := []int{int(lis.Fd())}
	if dev != nil {
		fds = append(fds, int(dev.Fd()))
	}
	fdpass.SendRaw(int(sock.Fd()), nil, []byte("listener"), fds...)
}
