package mountemu

import (
	"errors"
	"os"
)

// LoopFile is the content of an emulated /dev/loopN for a file export
// (it has the methods of blockfuse.Disk): the window of the bound backing
// file, or nothing when the device is free, so that dd, blkid and fsck on
// the guest's /dev/loopN see what a real loop device would show. Who may
// open it is the export's business (blockfuse: root:disk 0660, checked
// with the caller's guest credentials on every open).
type LoopFile struct {
	s *Server
	i int
}

// ControlFile is the (empty) content of the emulated /dev/loop-control;
// like the loop files it is exported root:disk 0660, so only a caller that
// may open it gets to send the loop-control ioctls K emulates.
type ControlFile struct{}

// LoopFile returns loop device i's content.
func (s *Server) LoopFile(i int) *LoopFile { return &LoopFile{s, i} }

// errUnbound is what I/O on a free loop device gets.
var errUnbound = errors.New("loop device not bound")

func (l *LoopFile) window() (f *os.File, off, size int64, ro bool) {
	l.s.mu.Lock()
	if l.i >= len(l.s.loops) {
		l.s.mu.Unlock()
		return nil, 0, 0, false
	}
	d := l.s.loops[l.i]
	l.s.mu.Unlock()
	if d.backing == nil {
		return nil, 0, 0, false
	}
	// The stat runs without the server's lock: the backing file may be
	// served by this process (a ubd export), whose answer must not wait
	// for a lock held here.
	off = int64(d.info.Offset)
	if st, err := d.backing.Stat(); err == nil {
		size = st.Size() - off
	}
	if d.info.Sizelimit != 0 && int64(d.info.Sizelimit) < size {
		size = int64(d.info.Sizelimit)
	}
	if size < 0 {
		size = 0
	}
	return d.backing, off, size, d.info.Flags&LoFlagsReadOnly != 0
}

// Size is the window's size (0 when free).
func (l *LoopFile) Size() int64 { _, _, n, _ := l.window(); return n }

// ReadOnly reports a read-only binding.
func (l *LoopFile) ReadOnly() bool { _, _, _, ro := l.window(); return ro }

// ReadAt reads from the window.
func (l *LoopFile) ReadAt(p []byte, off int64) (int, error) {
	f, base, size, _ := l.window()
	if f == nil {
		return 0, errUnbound
	}
	if off >= size {
		return 0, nil
	}
	if int64(len(p)) > size-off {
		p = p[:size-off]
	}
	return f.ReadAt(p, base+off)
}

// WriteAt writes into the window.
func (l *LoopFile) WriteAt(p []byte, off int64) (int, error) {
	f, base, size, ro := l.window()
	if f == nil || ro {
		return 0, errUnbound
	}
	if off >= size {
		return 0, nil
	}
	if int64(len(p)) > size-off {
		p = p[:size-off]
	}
	return f.WriteAt(p, base+off)
}

// Flush syncs the backing file.
func (l *LoopFile) Flush() error {
	if f, _, _, _ := l.window(); f != nil {
		return f.Sync()
	}
	return nil
}

// Discard is accepted and ignored.
func (l *LoopFile) Discard(off, n int64) error { return nil }

// Size is 0.
func (ControlFile) Size() int64 { return 0 }

// ReadOnly is false (tools open loop-control read-write).
func (ControlFile) ReadOnly() bool { return false }

// ReadAt reads nothing.
func (ControlFile) ReadAt(p []byte, off int64) (int, error) { return 0, nil }

// WriteAt writes nothing.
func (ControlFile) WriteAt(p []byte, off int64) (int, error) { return 0, nil }

// Flush does nothing.
func (ControlFile) Flush() error { return nil }

// Discard does nothing.
func (ControlFile) Discard(off, n int64) error { return nil }
