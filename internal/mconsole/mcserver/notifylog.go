package mcserver

import (
	"errors"
	"syscall"

	"github.com/umlkit/umlkit/internal/mconsole"
)

// SendNotify sends one notification to the notify socket at path ("" =
// none configured: nothing is sent). A failed send is logged with logf as
// UML logs it (spec/mconsole.md §5) and changes nothing else.
func SendNotify(logf func(string, ...any), path string, t mconsole.NotifyType, text string) {
	if path == "" {
		return
	}
	if err := NotifyFromString(path, t, text); err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EINVAL
		}
		logf("mconsole_notify - sendto failed, errno = %d", int(errno))
	}
}
