//go:build linux

package uswitch

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// Attached guest devices (docs/uml_switch.md, "Large frames"): a vnet
// client may hand the switch its guest's TAP device over its data socket
// (switchproto.AttachTap with the descriptor). The switch then reads the
// port's frames from the TAP and writes the port's frames into it, so a
// frame between two such guests crosses one process instead of three. The
// descriptor is checked to be a TAP with vnet headers; anything else sent
// with a descriptor is closed and counted as a bad frame.

// ctlSize is the ancillary buffer of a port socket's message: room for one
// descriptor (more are truncated and closed by the kernel).
var ctlSize = unix.CmsgSpace(4)

// guestTap is a port's attached TAP.
type guestTap struct {
	f  *os.File
	rc syscall.RawConn

	// The reader's allocation-free poller callback (readFn) and its
	// arguments and results; used by guestTapLoop only.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool
}

// newGuestTap wraps an attached TAP.
func newGuestTap(f *os.File, rc syscall.RawConn) *guestTap {
	g := &guestTap{f: f, rc: rc}
	g.readFn = func(fd uintptr) bool {
		// A raw read: the descriptor is non-blocking and the read takes a
		// copy's time, so the goroutine keeps its P and sysmon sleeps
		// (half the switch's context switches per frame, a quarter of its
		// CPU per byte between two attached guests). Waiting for the next
		// frame is the poller's, not a spin: on a busy machine spinning
		// takes the CPU the guests' TCP needs.
		g.rn, g.rerr = sys.RawRead(int(fd), g.rbuf)
		return g.rerr != unix.EAGAIN
	}
	return g
}

// read reads one frame into b, waiting through the poller when none is
// ready.
func (g *guestTap) read(b []byte) (int, error) {
	g.rbuf = b
	err := g.rc.Read(g.readFn)
	g.rbuf = nil
	if err != nil {
		// The poller fails only once the TAP is closed (no deadlines).
		return 0, os.ErrClosed
	}
	if g.rerr != nil {
		return 0, os.NewSyscallError("read", g.rerr)
	}
	return g.rn, nil
}

// attachedTap returns p's attached TAP, or nil.
func (p *port) attachedTap() *guestTap { return p.gtap.Load() }

// control handles a datagram of p that came with ancillary data: the
// attach request, or anything else, whose descriptors are closed.
func (s *Switch) control(p *port, payload, ctl []byte) {
	fds := rightsOf(ctl)
	if p.vnet && string(payload) == switchproto.AttachTap && len(fds) == 1 && p.attachedTap() == nil {
		// attach owns the descriptor, whatever it decides.
		if err := s.attach(p, fds[0]); err != nil {
			s.limited(&s.limBad, s.err, "Refusing the device of port %d: %v\n", p.id, err)
		}
		return
	}
	s.badFrames.Add(1)
	s.limited(&s.limBad, s.err, "Datagram with descriptors from port %d dropped\n", p.id)
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// rightsOf returns the descriptors in the SCM_RIGHTS messages of ctl.
func rightsOf(ctl []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(ctl)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if r, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

// attach makes fd (owned from now on, closed on failure) p's TAP once it
// is one with vnet headers, tells the client and starts reading it.
func (s *Switch) attach(p *port, fd int) error {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		unix.Close(fd)
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("TUNGETIFF (not a TAP)", err)
	}
	const want = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	flags := ifr.Uint16()
	if flags&(unix.IFF_TAP|unix.IFF_TUN|unix.IFF_NO_PI|unix.IFF_VNET_HDR) != want {
		unix.Close(fd)
		return os.NewSyscallError("TUNGETIFF", unix.EINVAL)
	}
	if n, err := unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ); err != nil || n != switchproto.VnetHdrLen {
		unix.Close(fd)
		return os.NewSyscallError("TUNGETVNETHDRSZ", unix.EINVAL)
	}
	raw := os.NewFile(uintptr(fd), "guest tap")
	f, err := sys.Pollable(raw, "guest tap")
	if err != nil {
		raw.Close()
		return err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	var serr error
	if err := p.sockRC.Control(func(sfd uintptr) {
		_, serr = unix.Write(int(sfd), []byte(switchproto.Attached))
	}); err != nil || serr != nil {
		f.Close()
		return os.NewSyscallError("reply", serr)
	}
	g := newGuestTap(f, rc)
	p.gtap.Store(g)
	if s.isClosing() || p.dead.Load() {
		// shutdown or removePort may have looked before the Store.
		f.Close()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.guestTapLoop(p, g) }()
	return nil
}

// guestTapLoop reads p's frames from its attached TAP until the port goes
// (removePort closes the TAP).
func (s *Switch) guestTapLoop(p *port, g *guestTap) {
	buf := make([]byte, bufSize)
	tx := newTxBatch()
	for {
		n, err := g.read(buf[headroom:])
		if err != nil {
			if isClosedErr(err) || p.dead.Load() {
				return
			}
			// The guest's network namespace is gone (EBADFD) or the
			// device is down: wait for the port to go.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ps := s.ports.Load()
		now := time.Since(s.start)
		s.macMu.Lock()
		s.ingress(p, ps, buf[:headroom+n], now, tx)
		s.macMu.Unlock()
		s.flush(tx)
	}
}
