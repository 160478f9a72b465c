//go:build linux

// Package netdevtest provides fakes for netdev.Transport users: Pipe
// returns two transports connected back to back by a unix datagram
// socketpair (real descriptors on the poller, one frame per datagram).
package netdevtest

import (
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/netdev"
	"github.com/umlkit/umlkit/internal/sys"
)

// Pipe returns two connected transports: a frame written to one is read
// from the other.
func Pipe() (*netdev.File, *netdev.File, error) {
	fa, fb, err := sys.FilePair(unix.SOCK_DGRAM, "netdevtest a", "netdevtest b")
	if err != nil {
		return nil, nil, err
	}
	a, err := netdev.NewFile(fa)
	if err != nil {
		fb.Close()
		return nil, nil, err
	}
	b, err := netdev.NewFile(fb)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}
