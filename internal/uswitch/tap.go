//go:build linux

package uswitch

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/tuntap"
)

var errDeadline = os.ErrDeadlineExceeded

func isClosedErr(err error) bool { return errors.Is(err, os.ErrClosed) }

// openTap attaches the configured tap interface as a port; failures are
// logged in the real one's words and the switch runs without it.
func (s *Switch) openTap() {
	dev, err := tuntap.Open(tuntap.Config{Name: s.cfg.Tap})
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			s.err.printf("Failed to open /dev/net/tun: %s\n", sys.Strerror(err))
		} else {
			s.err.printf("TUNSETIFF failed: %s\n", sys.Strerror(err))
		}
		return
	}
	id := -1
	if rc, err := dev.File().SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { id = int(fd) })
	}
	p := &port{id: id, tap: dev}
	if p.tapRC, err = dev.File().SyscallConn(); err != nil {
		s.err.printf("TUNSETIFF failed: %s\n", sys.Strerror(err))
		dev.Close()
		return
	}
	s.tapPort = p
	s.addPort(p)
	s.out.printf("New connection\n")
}

// tapLoop reads frames from the tap (one per read) and forwards them.
func (s *Switch) tapLoop() {
	p := s.tapPort
	buf := make([]byte, bufSize)
	tx := newTxBatch()
	for {
		n, err := p.tap.Read(buf[headroom:])
		if err != nil {
			if isClosedErr(err) || errors.Is(err, errDeadline) {
				return
			}
			s.limited(&s.limBad, s.err, "Reading tap: %s\n", sys.Strerror(err))
			if p.dead.Load() {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n < switchproto.MinFrame {
			p.drops.Add(1)
			continue
		}
		p.rxFrames.Add(1)
		p.rxBytes.Add(uint64(n))
		now := time.Since(s.start)
		ps := s.ports.Load()
		s.macMu.Lock()
		s.forward(p, ps, tx.packet(buf[:headroom+n], buf[headroom:headroom+n], false), now, tx)
		s.macMu.Unlock()
		s.flush(tx)
	}
}

func (s *Switch) writeTap(tx *txBatch, p *port, frame []byte) {
	s.writeDevice(tx, p, p.tapRC, frame)
}

// writeDevice writes one frame of port p into a TAP (the uplink, or a
// guest's attached one); a full device queue drops it, as a NIC would.
func (s *Switch) writeDevice(tx *txBatch, p *port, rc syscall.RawConn, frame []byte) {
	tx.tapOut = frame
	err := rc.Write(tx.tapWrite)
	if err == nil {
		err = tx.tapErr
	}
	tx.tapOut = nil
	if err != nil {
		p.drops.Add(1)
		return
	}
	p.txFrames.Add(1)
	p.txBytes.Add(uint64(len(frame)))
}
