//go:build linux

package netdev

import (
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// Multi-packet I/O. A relay direction reads every frame that is ready in
// one wake-up (FramesReader: read(2) in a loop on a TAP or packet socket,
// recvmmsg on a datagram socket) and hands them on together (FramesWriter:
// sendmmsg), so a burst of small frames costs one pass through the Go
// poller and, on sockets, one system call per batch instead of per frame.

// relayBatch is how many frames a relay direction moves per wake-up.
const relayBatch = 8

// bigFrame ends a read(2) batch: after a frame this large, readFrames
// returns instead of trying the next read.
const bigFrame = 16 << 10

// FramesReader is a Transport that reads all the frames that are ready,
// at least one, into bufs (their lengths into lens) and returns how many.
type FramesReader interface {
	ReadFrames(bufs [][]byte, lens []int) (int, error)
}

// closedErr reports an error of a raw connection: the descriptor closed
// (the only way its Read or Write fails, as deadlines are not used).
func closedErr(err error) error {
	return errors.Join(os.ErrClosed, err)
}

// readFrames reads ready frames from rc, one per read(2), as FramesReader.
// A read of 0 bytes is the end of a connection (a seqpacket peer closed).
func readFrames(rc syscall.RawConn, bufs [][]byte, lens []int) (int, error) {
	n := 0
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for n < len(bufs) {
			// Raw (sys.RawRead): the descriptor is non-blocking and a
			// read takes a copy's time, so the pump keeps its P.
			m, e := sys.RawRead(int(fd), bufs[n])
			if e != nil {
				if e != unix.EAGAIN {
					rerr = os.NewSyscallError("read", e)
				}
				break
			}
			if m == 0 {
				rerr = io.EOF
				break
			}
			lens[n] = m
			n++
			if m >= bigFrame {
				// A large segment is batch enough; looking for more
				// would mostly cost a read that finds nothing.
				break
			}
		}
		return n > 0 || rerr != nil
	})
	switch {
	case n > 0:
		return n, nil // an error after them comes again on the next read
	case err != nil:
		return 0, closedErr(err)
	}
	return 0, rerr
}

// recvFrames receives ready datagrams from rc with recvmmsg into bufs, as
// FramesReader; mm is the caller's batch (one reader).
func recvFrames(rc syscall.RawConn, mm *sys.Mmsg, bufs [][]byte, lens []int) (int, error) {
	k := min(len(bufs), len(mm.Hdrs))
	for i := range k {
		mm.Set(i, bufs[i], nil)
	}
	n := 0
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		n, rerr = mm.Recvmmsg(int(fd), 0, k, unix.MSG_DONTWAIT)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, closedErr(err)
	}
	if rerr != nil {
		return 0, os.NewSyscallError("recvmmsg", rerr)
	}
	for i := range n {
		lens[i] = int(mm.Hdrs[i].Len)
	}
	return n, nil
}

// ReadFrames implements FramesReader.
func (t *File) ReadFrames(bufs [][]byte, lens []int) (int, error) {
	return readFrames(t.rc, bufs, lens)
}

// ReadFrames implements FramesReader.
func (d *Daemon) ReadFrames(bufs [][]byte, lens []int) (int, error) {
	return recvFrames(d.rc, &d.rmm, bufs, lens)
}

// ReadFrames implements FramesReader.
func (d *Datagram) ReadFrames(bufs [][]byte, lens []int) (int, error) {
	return recvFrames(d.rc, &d.rmm, bufs, lens)
}

// ReadFrames implements FramesReader: the standard frames of the inner
// transport behind zero vnet headers.
func (t *segmenting) ReadFrames(bufs [][]byte, lens []int) (int, error) {
	br, ok := t.Transport.(FramesReader)
	if !ok {
		br = oneFrame{t.Transport}
	}
	if len(t.inner) < len(bufs) {
		t.inner = make([][]byte, len(bufs))
	}
	for i, b := range bufs {
		t.inner[i] = b[vnetHdrLen:]
	}
	n, err := br.ReadFrames(t.inner[:len(bufs)], lens)
	for i := range n {
		clear(bufs[i][:vnetHdrLen])
		lens[i] += vnetHdrLen
	}
	return n, err
}

var (
	_ FramesReader = (*File)(nil)
	_ FramesReader = (*Daemon)(nil)
	_ FramesReader = (*Datagram)(nil)
	_ FramesReader = (*segmenting)(nil)
	_ FramesWriter = (*Daemon)(nil)
)
