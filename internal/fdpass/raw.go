package fdpass

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SendRaw sends data with the descriptors fds attached as SCM_RIGHTS on the
// raw socket sock, in one sendmsg(2) with flags 0 (to may be nil when the
// socket is connected). It exists for callers that must not wrap an inherited
// socket in the runtime poller (which would set O_NONBLOCK on a file
// description shared with other processes), such as port-helper's fd 3.
// Unlike Send it sends data as given, even when empty.
func SendRaw(sock int, to unix.Sockaddr, data []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		n, err := unix.SendmsgN(sock, data, oob, to, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		if n != len(data) {
			return fmt.Errorf("send fds: short write (%d/%d data)", n, len(data))
		}
		return nil
	}
}
