//go:build linux

package netdev

import (
	"errors"
	"fmt"
)

// vecN:transport=fd,fd=N: a descriptor linux inherited (a socket pair to a
// user-space network helper), one raw Ethernet frame per datagram, no
// header (net.md §6). P hands its copy of the descriptor to K.

func init() {
	RegisterVector(&Driver{
		Name:  "fd",
		Help:  "vecN:transport=fd,fd=<inherited descriptor>[,mac=<mac>] (one frame per datagram)",
		Parse: parseVecFD,
		Open:  openVecFD,
		Wrap:  wrapFile,
	})
}

type vecFDSpec struct {
	vecSpec
	FD int
}

func parseVecFD(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	if _, ok := s.args["fd"]; !ok {
		return nil, errors.New("transport=fd needs fd=")
	}
	n, err := s.args.num("fd", 31, 0)
	if err != nil {
		return nil, err
	}
	return vecFDSpec{vecSpec: s, FD: int(n)}, nil
}

func openVecFD(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecFDSpec)
	if h.HostFD == nil {
		return nil, fmt.Errorf("vec%d: fd=%d: no host descriptors here", n, s.FD)
	}
	f := h.HostFD(s.FD)
	if f == nil {
		return nil, fmt.Errorf("vec%d: fd=%d is not open", n, s.FD)
	}
	return openedVec(h, n, "fd", s.common, f, nil)
}
