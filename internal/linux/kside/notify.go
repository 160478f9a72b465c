package kside

import (
	"errors"
	"fmt"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
	"golang.org/x/sys/unix"
)

// mconsole=notify:PATH (spec/mconsole.md §5): P sends the SOCKET
// notification (the mconsole socket's path) when the mconsole is up at each
// boot, K the PANIC notification with the panic message. USER_NOTIFY
// (writes to the guest's /proc/mconsole) does not exist here: procfs is the
// host's.

// panicf logs UML's panic line and sends the PANIC notification (K).
func (k *kernel) panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	k.logf("Kernel panic - not syncing: %s", msg)
	if c := k.files[plan.FDNotify]; c != nil {
		// Run as root, K cannot reach the socket's directory: it sends on
		// the socket P connected to it.
		data := append([]byte(msg), 0)
		if len(data) > mconsole.MaxData {
			data = data[:mconsole.MaxData]
		}
		b, err := mconsole.Notify{Type: mconsole.NotifyPanic, Data: data}.MarshalBinary()
		if err == nil {
			_, err = unix.Write(int(c.Fd()), b)
		}
		if err != nil {
			var errno unix.Errno
			if !errors.As(err, &errno) {
				errno = unix.EINVAL
			}
			k.logf("mconsole_notify - sendto failed, errno = %d", int(errno))
		}
		return
	}
	mcserver.SendNotify(k.logf, k.plan.Notify, mconsole.NotifyPanic, msg)
}
