package kernel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
)

// mconsole=notify:PATH (spec/mconsole.md §5): P sends the SOCKET
// notification (the mconsole socket's path) when the mconsole is up at each
// boot, K the PANIC notification with the panic message. A failed send is
// logged as UML logs it and changes nothing else. USER_NOTIFY (writes to
// the guest's /proc/mconsole) does not exist here: procfs is the host's.

// notify sends one notification to path, logging UML's line on failure.
func notify(logf func(string, ...any), path string, t mconsole.NotifyType, text string) {
	if path == "" {
		return
	}
	if err := mcserver.NotifyFromString(path, t, text); err != nil {
		var errno unix.Errno
		if !errors.As(err, &errno) {
			errno = unix.EINVAL
		}
		logf("mconsole_notify - sendto failed, errno = %d", int(errno))
	}
}

// panicf logs UML's panic line and sends the PANIC notification (K).
func (k *kernel) panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	k.logf("Kernel panic - not syncing: %s", msg)
	if c := k.files["notify"]; c != nil {
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
	notify(k.logf, k.plan.Notify, mconsole.NotifyPanic, msg)
}
