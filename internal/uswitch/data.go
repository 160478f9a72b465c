//go:build linux

package uswitch

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/gso"
	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// rxState is the data loop's receive batch (allocated once).
type rxState struct {
	mm    sys.Mmsg
	bufs  []byte
	names [batchSize]switchproto.Sockaddr
	n     int
	err   error
}

// txBatch collects (port, frame) pairs; flush sends them grouped by
// destination with sendmmsg. Each sending goroutine owns one.
type txBatch struct {
	mm     sys.Mmsg
	ports  [txBatchSize]*port
	frames [txBatchSize][]byte
	done   [txBatchSize]bool
	n      int

	// Allocation-free callbacks for the runtime poller: the connected send
	// (cur*) and the tap write (tapOut).
	curFrom, curN int
	curSent       int
	curErr        error
	curWait       bool
	sendFn        func(fd uintptr) bool
	tapOut        []byte
	tapWrite      func(fd uintptr) bool
	tapErr        error
	pfd           [1]unix.PollFd

	pk     packet        // the frame being forwarded
	seg    gso.Segmenter // plain forms of vnet frames
	segOut bool          // frames from seg are queued: flush before its next use
}

func newTxBatch() *txBatch {
	tx := &txBatch{mm: sys.NewMmsg(txBatchSize)}
	tx.tapWrite = func(fd uintptr) bool {
		// Raw, as guestTap's reads: a TAP write does not wait.
		_, tx.tapErr = sys.RawWrite(int(fd), tx.tapOut)
		return true
	}
	tx.sendFn = func(fd uintptr) bool {
		for try := 0; ; try++ {
			tx.curSent, tx.curErr = tx.mm.Sendmmsg(int(fd), tx.curFrom, tx.curN, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if !tx.curWait || !errors.Is(tx.curErr, unix.EAGAIN) || try == 3 {
				return true
			}
			// The runtime poller's epoll is edge-triggered: only a poll
			// while the peer's queue is full registers us for the peer's
			// "room again" wake-up (unix_dgram_peer_wake_me). If there is
			// room already, retry at once.
			tx.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
			if n, _ := unix.Poll(tx.pfd[:], 0); n == 0 || tx.pfd[0].Revents&unix.POLLOUT == 0 {
				return false
			}
		}
	}
	return tx
}

func (s *Switch) dataLoop() error {
	rx := &rxState{mm: sys.NewMmsg(batchSize), bufs: make([]byte, batchSize*bufSize)}
	tx := newTxBatch()
	readFn := func(fd uintptr) bool {
		for i := 0; i < batchSize; i++ {
			h := &rx.mm.Hdrs[i].Hdr
			h.Namelen = switchproto.SockaddrSize
			h.Flags = 0
		}
		n, err := rx.mm.Recvmmsg(int(fd), 0, batchSize, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return false
		}
		rx.n, rx.err = n, err
		return true
	}
	for i := 0; i < batchSize; i++ {
		rx.mm.Set(i, rx.bufs[i*bufSize+headroom:(i+1)*bufSize], rx.names[i][:])
	}
	var last *port
	for {
		if err := s.dataRC.Read(readFn); err != nil {
			return nilIfStopped(err)
		}
		if rx.err != nil {
			s.limited(&s.limBad, s.err, "Reading data socket: %s\n", sys.Strerror(rx.err))
			continue
		}
		now := time.Since(s.start)
		ps := s.ports.Load()
		s.macMu.Lock()
		for i := 0; i < rx.n; i++ {
			h := &rx.mm.Hdrs[i]
			ln := int(h.Len)
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || ln > switchproto.MaxFrame {
				s.oversized(nil)
				continue
			}
			namelen := int(h.Hdr.Namelen)
			if namelen > switchproto.SockaddrSize {
				namelen = switchproto.SockaddrSize
			}
			key := switchproto.Canonical(rx.names[i][:namelen])
			p := last
			if p == nil || p.key != key || p.dead.Load() {
				p = ps.byKey[key]
			}
			if p == nil {
				s.unknownSenders.Add(1)
				s.limited(&s.limUnknown, s.out, "Unknown connection for packet, shouldn't happen.\n")
				continue
			}
			last = p
			if tx.n+len(ps.list) > txBatchSize {
				// Send what is queued without holding the table lock
				// (a send may wait for a busy port).
				s.macMu.Unlock()
				s.flush(tx)
				s.macMu.Lock()
			}
			s.ingress(p, ps, rx.bufs[i*bufSize:i*bufSize+headroom+ln], now, tx)
		}
		s.maybeSweep(now)
		s.macMu.Unlock()
		s.flush(tx)
	}
}

// maxDatagram is the longest datagram p may send.
func (p *port) maxDatagram() int {
	if p.vnet {
		return switchproto.MaxVnetDatagram
	}
	return switchproto.MaxFrame
}

func (s *Switch) oversized(p *port) {
	s.badFrames.Add(1)
	s.limited(&s.limBad, s.err, "Oversized datagram (more than %d bytes) dropped\n", p.maxDatagram())
}

// ingress counts and forwards one datagram received from port p, which
// buf holds after headroom bytes (macMu held).
func (s *Switch) ingress(p *port, ps *portSet, buf []byte, now time.Duration, tx *txBatch) {
	frame := buf[headroom:]
	if p.vnet {
		if len(frame) < switchproto.VnetHdrLen {
			frame = nil
		} else {
			frame = frame[switchproto.VnetHdrLen:]
		}
	}
	if len(frame) < switchproto.MinFrame {
		s.badFrames.Add(1)
		p.drops.Add(1)
		s.limited(&s.limBad, s.err, "Short frame of %d bytes from port %d dropped\n", len(frame), p.id)
		return
	}
	p.rxFrames.Add(1)
	p.rxBytes.Add(uint64(len(frame)))
	s.forward(p, ps, tx.packet(buf, frame, p.vnet), now, tx)
}

func nilIfStopped(err error) error {
	if errors.Is(err, errDeadline) || isClosedErr(err) {
		return nil
	}
	return err
}

// forward learns the source of pk (from port in) and queues it to its
// destinations. Called with macMu held.
func (s *Switch) forward(in *port, ps *portSet, pk *packet, now time.Duration, tx *txBatch) {
	frame := pk.frame
	src := ether.MAC(frame[ether.OffSrc : ether.OffSrc+ether.AddrLen])
	if !src.IsMulticast() {
		s.learn(src, in, now)
	}
	dst := ether.MAC(frame[ether.OffDst : ether.OffDst+ether.AddrLen])
	if !s.cfg.Hub && !dst.IsMulticast() {
		if e := s.macs[dst]; e != nil && !e.port.dead.Load() && now-e.seen <= s.cfg.AgeLimit {
			if e.port != in || in.isClient() {
				s.queue(tx, e.port, pk)
			}
			return
		}
		s.logUnknown(src, in)
	}
	for _, q := range ps.list {
		if q != in {
			s.queue(tx, q, pk)
		}
	}
}

func (s *Switch) learn(src ether.MAC, in *port, now time.Duration) {
	e := s.macs[src]
	if e != nil && e.port == in && now-e.seen <= s.cfg.AgeLimit {
		e.seen = now
		return
	}
	var old *port
	if e != nil && !e.port.dead.Load() && now-e.seen <= s.cfg.AgeLimit {
		old = e.port
	}
	if e == nil {
		if len(s.macs) >= s.cfg.MaxMACs {
			s.sweep(now)
			if len(s.macs) >= s.cfg.MaxMACs {
				s.limited(&s.limFull, s.err, "MAC table full (%d entries), not learning %s\n", s.cfg.MaxMACs, src)
				return
			}
		}
		e = &macEntry{}
		s.macs[src] = e
	}
	e.port, e.seen = in, now
	b := append(s.logBuf[:0], " Addr: "...)
	b = src.Append(b)
	b = append(b, " New port "...)
	b = appendInt(b, in.id)
	if old != nil {
		b = append(b, " old port "...)
		b = appendInt(b, old.id)
	}
	b = append(b, '\n')
	s.logBuf = b
	s.out.write(b)
}

func (s *Switch) logUnknown(src ether.MAC, in *port) {
	ok, note := s.limUnknownAddr.allow(time.Now())
	if note > 0 {
		s.out.printf("(%d similar messages suppressed)\n", note)
	}
	if !ok {
		return
	}
	b := append(s.logBuf[:0], "unknown Addr: "...)
	b = src.Append(b)
	b = append(b, " from port "...)
	if in == nil {
		b = append(b, "UNKNOWN"...)
	} else {
		b = appendInt(b, in.id)
	}
	b = append(b, '\n')
	s.logBuf = b
	s.out.write(b)
}

func appendInt(b []byte, v int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

func (s *Switch) maybeSweep(now time.Duration) {
	if now-s.lastSweep >= sweepEvery {
		s.sweep(now)
	}
}

// sweep deletes aged entries and entries of departed ports (macMu held).
func (s *Switch) sweep(now time.Duration) {
	s.lastSweep = now
	for m, e := range s.macs {
		if e.port.dead.Load() || now-e.seen > s.cfg.AgeLimit {
			delete(s.macs, m)
		}
	}
}

// queue adds pk for port p to tx in the form p takes (the tap is written
// at once).
func (s *Switch) queue(tx *txBatch, p *port, pk *packet) {
	if g := p.attachedTap(); g != nil {
		s.writeDevice(tx, p, g.rc, pk.vnetForm())
		return
	}
	if p.vnet {
		s.enqueue(tx, p, pk.vnetForm())
		return
	}
	frames := s.plainForms(tx, pk)
	if frames == nil {
		p.drops.Add(1)
		return
	}
	if p.vx != nil {
		s.vxSend(p, frames)
		return
	}
	for _, f := range frames {
		if p.tap != nil {
			s.writeTap(tx, p, f)
		} else {
			s.enqueue(tx, p, f)
		}
	}
}

// enqueue adds one datagram for port p to tx.
func (s *Switch) enqueue(tx *txBatch, p *port, frame []byte) {
	if tx.n == txBatchSize {
		s.flush(tx)
	}
	tx.ports[tx.n] = p
	tx.frames[tx.n] = frame
	tx.n++
}

// flush sends the queued frames, one sendmmsg per destination (in queue
// order for each destination).
func (s *Switch) flush(tx *txBatch) {
	for i := 0; i < tx.n; i++ {
		if tx.done[i] {
			continue
		}
		p := tx.ports[i]
		k := 0
		for j := i; j < tx.n; j++ {
			if tx.done[j] || tx.ports[j] != p {
				continue
			}
			tx.done[j] = true
			tx.mm.Set(k, tx.frames[j], nil)
			k++
		}
		s.sendConnected(tx, p, k)
	}
	for k := 0; k < tx.n; k++ {
		tx.ports[k], tx.frames[k], tx.done[k] = nil, nil, false
	}
	tx.n = 0
	tx.segOut = false
}

func (s *Switch) countSent(tx *txBatch, p *port, from, n int) {
	if n <= 0 {
		return
	}
	var b uint64
	for k := from; k < from+n; k++ {
		b += uint64(tx.mm.BufLen(k))
	}
	p.txFrames.Add(uint64(n))
	p.txBytes.Add(b)
}

// sendConnected sends messages [0,k) on p's own connected socket. When the
// peer's queue is full it waits for room through the poller (a connected
// datagram socket polls writable only when the peer can take more), at most
// portSndTimeout; a port that timed out is then not waited for during slowHold.
func (s *Switch) sendConnected(tx *txBatch, p *port, k int) {
	i := 0
	waited, deadline := false, false
	for i < k {
		tx.curFrom, tx.curN, tx.curWait = i, k-i, waited
		err := p.sockRC.Write(tx.sendFn)
		if err == nil {
			err = tx.curErr
		}
		s.countSent(tx, p, i, tx.curSent)
		i += tx.curSent
		if err == nil {
			waited = false
			continue
		}
		if errors.Is(err, unix.EAGAIN) && !waited && time.Duration(p.slowUntil.Load()) <= time.Since(s.start) {
			p.sock.SetWriteDeadline(time.Now().Add(portSndTimeout))
			waited, deadline = true, true
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.slowUntil.Store(int64(time.Since(s.start) + slowHold))
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, os.ErrDeadlineExceeded) || isClosedErr(err) {
			p.drops.Add(uint64(k - i))
			break
		}
		p.drops.Add(1)
		s.limited(&s.limSend, s.err, "send_sock sending to fd %d %s\n", p.id, sys.Strerror(err))
		i++
	}
	if deadline {
		p.sock.SetWriteDeadline(time.Time{})
	}
}
