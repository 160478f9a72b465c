package mcserver

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/mconsole"
)

var aLongTimeAgo = time.Unix(1, 0)

// Notify sends one notify message to the socket at path (mconsole=notify:
// <path>) from an unbound datagram socket, as the kernel does. data longer
// than 512 bytes is truncated (the kernel truncates /proc/mconsole writes).
// Callers usually only log a failure ("mconsole_notify - sendto failed,
// errno = %d").
func Notify(path string, t mconsole.NotifyType, data []byte) error {
	if len(data) > mconsole.MaxData {
		data = data[:mconsole.MaxData]
	}
	b, err := mconsole.Notify{Type: t, Data: data}.MarshalBinary()
	if err != nil {
		return err
	}
	return sendUnbound(path, b)
}

// sendUnbound sends b to the datagram socket at path from a fresh unbound
// socket (also used for uml_watchdog's HANG packet).
func sendUnbound(path string, b []byte) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, b, unix.MSG_DONTWAIT, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("notify %s: %w", path, os.NewSyscallError("sendto", err))
	}
	return nil
}

// SendRaw sends an arbitrary datagram to a notify socket from an unbound
// socket (uml_watchdog uses it for its 24-byte HANG packet).
func SendRaw(path string, b []byte) error { return sendUnbound(path, b) }

// NotifyFromString is a convenience for text events: NotifyPanic and
// NotifySocket carry their text with a terminating NUL, NotifyUser without.
func NotifyFromString(path string, t mconsole.NotifyType, text string) error {
	data := []byte(text)
	if t == mconsole.NotifySocket || t == mconsole.NotifyPanic {
		data = append(data, 0)
	}
	return Notify(path, t, data)
}
