package mountemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ioctl emulates the loop requests on the emulated /dev/loop-control and
// /dev/loopN, and the block requests on K's device files (block.go); a
// request on any other file runs natively.
func (s *Server) ioctl(n *Notif, valid func() bool) Reply {
	if IsBlockRequest(n.Args[1]) {
		return s.blockIoctl(n, valid)
	}
	fd, req, arg := int(int32(n.Args[0])), uint32(n.Args[1]), n.Args[2]
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", n.Pid, fd), &st); err != nil {
		return Reply{Continue: true}
	}
	idx, ok := s.ids[fileID{st.Dev, st.Ino}]
	if !ok {
		return Reply{Continue: true}
	}
	if idx < 0 {
		return s.loopControl(req, arg)
	}
	switch req {
	case LoopSetFD:
		return s.loopSetFD(n, idx, int(int32(arg)), nil, valid)
	case LoopConfigure:
		mem, err := openMem(n.Pid, false)
		if err != nil {
			return errno(err)
		}
		b, err := mem.read(arg, LoopConfigSize)
		mem.Close()
		if err != nil {
			return errno(err)
		}
		var c LoopConfig
		c.UnmarshalBinary(b)
		return s.loopSetFD(n, idx, int(int32(c.FD)), &c.Info, valid)
	case LoopSetStatus64:
		mem, err := openMem(n.Pid, false)
		if err != nil {
			return errno(err)
		}
		b, err := mem.read(arg, LoopInfo64Size)
		mem.Close()
		if err != nil {
			return errno(err)
		}
		var li LoopInfo
		li.UnmarshalBinary(b)
		if !valid() {
			return Reply{Errno: int32(unix.EINTR)}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		l := &s.loops[idx]
		if l.backing == nil {
			return Reply{Errno: int32(unix.ENXIO)}
		}
		l.setStatus(&li)
		return Reply{}
	case LoopGetStatus64:
		s.mu.Lock()
		l := s.loops[idx]
		s.mu.Unlock()
		if l.backing == nil {
			return Reply{Errno: int32(unix.ENXIO)}
		}
		info := l.info
		info.Number = uint32(idx)
		var bst unix.Stat_t
		if unix.Fstat(int(l.backing.Fd()), &bst) == nil {
			info.Device, info.Inode = bst.Dev, bst.Ino
		}
		b, _ := info.MarshalBinary()
		mem, err := openMem(n.Pid, true)
		if err != nil {
			return errno(err)
		}
		defer mem.Close()
		if !valid() {
			return Reply{Errno: int32(unix.EINTR)}
		}
		if err := mem.write(arg, b); err != nil {
			return errno(err)
		}
		return Reply{}
	case LoopClrFD:
		s.mu.Lock()
		defer s.mu.Unlock()
		l := &s.loops[idx]
		switch {
		case l.backing == nil:
			return Reply{Errno: int32(unix.ENXIO)}
		case l.mounts > 0: // the kernel defers it the same way
			l.info.Flags |= LoFlagsAutoclear
		default:
			l.backing.Close()
			*l = loopDev{}
		}
		return Reply{}
	case LoopSetCapacity, LoopSetDirectIO, LoopSetBlockSize:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.loops[idx].backing == nil {
			return Reply{Errno: int32(unix.ENXIO)}
		}
		return Reply{}
	case LoopGetStatus, LoopSetStatus:
		// the old 32-bit struct: nobody uses it on x86_64 any more
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.loops[idx].backing == nil {
			return Reply{Errno: int32(unix.ENXIO)}
		}
		return Reply{Errno: int32(unix.EINVAL)}
	}
	return Reply{Errno: int32(unix.EINVAL)}
}

// setStatus applies LOOP_SET_STATUS64 (the read-only flag cannot change).
func (l *loopDev) setStatus(li *LoopInfo) {
	const settable = LoFlagsAutoclear | LoFlagsPartscan | LoFlagsDirectIO
	l.info.Offset, l.info.Sizelimit = li.Offset, li.Sizelimit
	l.info.Flags = l.info.Flags&^settable | li.Flags&settable
	l.info.FileName, l.info.CryptName = li.FileName, li.CryptName
	l.info.EncryptType = li.EncryptType
}

func (s *Server) loopSetFD(n *Notif, idx, gfd int, info *LoopInfo, valid func() bool) Reply {
	f, err := takeFD(n.Pid, gfd)
	if err != nil {
		return errno(err)
	}
	if !valid() {
		f.Close()
		return Reply{Errno: int32(unix.EINTR)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFBLK {
		f.Close()
		return Reply{Errno: int32(unix.EINVAL)}
	}
	if _, ours := s.ids[fileID{st.Dev, st.Ino}]; ours {
		// An emulated loop device (or loop-control) as the backing file:
		// K would serve its own files to itself, and a stacked loop
		// left the guest's opens waiting on K's server for good. Linux
		// refuses loop cycles with EINVAL; we refuse every loop on a loop.
		f.Close()
		return Reply{Errno: int32(unix.EINVAL)}
	}
	fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.loops[idx]
	if l.backing != nil {
		f.Close()
		return Reply{Errno: int32(unix.EBUSY)}
	}
	*l = loopDev{backing: f, id: fileID{st.Dev, st.Ino}}
	if info != nil {
		l.setStatus(info)
		l.info.Flags |= info.Flags & LoFlagsReadOnly
	}
	if fl&unix.O_ACCMODE == unix.O_RDONLY {
		l.info.Flags |= LoFlagsReadOnly
	}
	if l.info.Name() == "" {
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", n.Pid, gfd)); err == nil {
			l.info.SetName(p)
		}
	}
	return Reply{}
}

func (s *Server) loopControl(req uint32, arg uint64) Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req {
	case LoopCtlGetFree:
		for i := range s.loops {
			if s.loops[i].backing == nil {
				return Reply{Val: int64(i)}
			}
		}
		return Reply{Errno: int32(unix.ENOSPC)}
	case LoopCtlAdd:
		if int(arg) < len(s.loops) {
			return Reply{Errno: int32(unix.EEXIST)}
		}
		return Reply{Errno: int32(unix.ENOSPC)}
	case LoopCtlRemove:
		if int(arg) >= len(s.loops) {
			return Reply{Errno: int32(unix.ENODEV)}
		}
		if s.loops[arg].backing != nil {
			return Reply{Errno: int32(unix.EBUSY)}
		}
		return Reply{Errno: int32(unix.EPERM)}
	}
	return Reply{Errno: int32(unix.EINVAL)}
}

// underlying follows a file that is an emulated loop device to the file
// at the end of its chain of backing files (what a mount of it would
// really write to); other files are returned as they are.
func (s *Server) underlying(f *os.File) *os.File {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return f
	}
	id := fileID{st.Dev, st.Ino}
	s.mu.Lock()
	defer s.mu.Unlock()
	for hops := 0; hops <= len(s.loops); hops++ {
		j, ok := s.ids[id]
		if !ok || j < 0 || j >= len(s.loops) || s.loops[j].backing == nil {
			return f
		}
		f, id = s.loops[j].backing, s.loops[j].id
	}
	return f
}
