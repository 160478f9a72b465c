//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// vecN:transport=bess,dst=PATH[,src=PATH]: a unix SOCK_SEQPACKET
// connection to a BESS (or any) switch port socket, one frame per message
// (net.md §6). P binds src= first when given, then connects.

func init() {
	RegisterVector(&Driver{
		Name:  "bess",
		Help:  "vecN:transport=bess,dst=<socket>[,src=<socket>][,mac=<mac>] (a unix seqpacket switch port)",
		Parse: parseVecBess,
		Open:  openVecBess,
		Wrap:  wrapFile,
	})
}

type vecBessSpec struct {
	vecSpec
	Dst, Src string
}

// maxSunPath is the longest unix socket path (sun_path less its NUL).
const maxSunPath = 107

func parseVecBess(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	sp := vecBessSpec{vecSpec: s, Dst: s.args["dst"], Src: s.args["src"]}
	switch {
	case sp.Dst == "":
		return nil, errors.New("transport=bess needs dst=")
	case len(sp.Dst) > maxSunPath || len(sp.Src) > maxSunPath:
		return nil, fmt.Errorf("transport=bess: socket paths are at most %d characters", maxSunPath)
	}
	return sp, nil
}

func openVecBess(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecBessSpec)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "bess")
	if s.Src != "" {
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: s.Src}); err != nil {
			f.Close()
			return nil, fmt.Errorf("vec%d: bind %s: %w", n, s.Src, err)
		}
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: s.Dst}); err != nil {
		f.Close()
		return nil, fmt.Errorf("vec%d: connect %s: %w", n, s.Dst, err)
	}
	return openedVec(h, n, "bess", s.common, f, nil)
}
