//go:build linux

// Package netdevtest provides fakes for netdev.Transport users: Pipe
// returns two transports connected back to back by a unix datagram
// socketpair (real descriptors on the poller, one frame per datagram).
package netdevtest

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/netdev"
)

// Pipe returns two connected transports: a frame written to one is read
// from the other.
func Pipe() (*netdev.File, *netdev.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	a, err := netdev.NewFile(os.NewFile(uintptr(fds[0]), "netdevtest a"))
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	b, err := netdev.NewFile(os.NewFile(uintptr(fds[1]), "netdevtest b"))
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}
