package mountemu

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Sysinfo is struct sysinfo, which sysinfo(2) fills: what the machine's
// guest gets instead of the host's when Config.Sysinfo is set (the
// machine's memory, docs/linux.md "The machine's /proc views"). Sizes are
// in units of MemUnit bytes.
type Sysinfo struct {
	Uptime                                                       int64
	Loads                                                        [3]uint64
	TotalRAM, FreeRAM, SharedRAM, BufferRAM, TotalSwap, FreeSwap uint64
	Procs                                                        uint16
	TotalHigh, FreeHigh                                          uint64
	MemUnit                                                      uint32
}

// SysinfoSize is sizeof(struct sysinfo) for 64-bit ABIs (x86_64): eight
// longs, a short and its padding, two longs, an int and the padding to the
// next long.
const SysinfoSize = 112

// offsets in struct sysinfo (64-bit)
const (
	offSiUptime    = 0
	offSiLoads     = 8
	offSiTotalRAM  = 32
	offSiFreeRAM   = 40
	offSiSharedRAM = 48
	offSiBufferRAM = 56
	offSiTotalSwap = 64
	offSiFreeSwap  = 72
	offSiProcs     = 80
	offSiTotalHigh = 88
	offSiFreeHigh  = 96
	offSiMemUnit   = 104
)

// ErrShortSysinfo is returned for a buffer smaller than struct sysinfo.
var ErrShortSysinfo = errors.New("sysinfo: short buffer")

// MarshalBinary encodes struct sysinfo in host byte order.
func (s *Sysinfo) MarshalBinary() ([]byte, error) {
	b := make([]byte, SysinfoSize)
	ne.PutUint64(b[offSiUptime:], uint64(s.Uptime))
	for i, l := range s.Loads {
		ne.PutUint64(b[offSiLoads+8*i:], l)
	}
	ne.PutUint64(b[offSiTotalRAM:], s.TotalRAM)
	ne.PutUint64(b[offSiFreeRAM:], s.FreeRAM)
	ne.PutUint64(b[offSiSharedRAM:], s.SharedRAM)
	ne.PutUint64(b[offSiBufferRAM:], s.BufferRAM)
	ne.PutUint64(b[offSiTotalSwap:], s.TotalSwap)
	ne.PutUint64(b[offSiFreeSwap:], s.FreeSwap)
	ne.PutUint16(b[offSiProcs:], s.Procs)
	ne.PutUint64(b[offSiTotalHigh:], s.TotalHigh)
	ne.PutUint64(b[offSiFreeHigh:], s.FreeHigh)
	ne.PutUint32(b[offSiMemUnit:], s.MemUnit)
	return b, nil
}

// UnmarshalBinary decodes struct sysinfo in host byte order.
func (s *Sysinfo) UnmarshalBinary(b []byte) error {
	if len(b) < SysinfoSize {
		return ErrShortSysinfo
	}
	s.Uptime = int64(ne.Uint64(b[offSiUptime:]))
	for i := range s.Loads {
		s.Loads[i] = ne.Uint64(b[offSiLoads+8*i:])
	}
	s.TotalRAM = ne.Uint64(b[offSiTotalRAM:])
	s.FreeRAM = ne.Uint64(b[offSiFreeRAM:])
	s.SharedRAM = ne.Uint64(b[offSiSharedRAM:])
	s.BufferRAM = ne.Uint64(b[offSiBufferRAM:])
	s.TotalSwap = ne.Uint64(b[offSiTotalSwap:])
	s.FreeSwap = ne.Uint64(b[offSiFreeSwap:])
	s.Procs = ne.Uint16(b[offSiProcs:])
	s.TotalHigh = ne.Uint64(b[offSiTotalHigh:])
	s.FreeHigh = ne.Uint64(b[offSiFreeHigh:])
	s.MemUnit = ne.Uint32(b[offSiMemUnit:])
	return nil
}

// sysinfo answers a trapped sysinfo(2) of the 64-bit ABI with
// Config.Sysinfo's figures, written into the caller's buffer.
func (s *Server) sysinfo(n *Notif, valid func() bool) Reply {
	if s.cfg.Sysinfo == nil || n.Arch != s.nums.arch {
		return Reply{Continue: true}
	}
	info, err := s.cfg.Sysinfo()
	if err != nil {
		return Reply{Continue: true} // the host's figures, as without the filter
	}
	b, _ := info.MarshalBinary()
	mem, err := openMem(n.Pid, true)
	if err != nil {
		return Reply{Continue: true}
	}
	defer mem.Close()
	if !valid() { // the pid may be another process's by now
		return Reply{Errno: int32(unix.EINTR)}
	}
	if err := mem.write(n.Args[0], b); err != nil {
		return Reply{Errno: int32(unix.EFAULT)}
	}
	return Reply{}
}
