//go:build linux

package uswitch

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
)

// Per-port data sockets. A v1/v3 client is answered with the address of a
// socket of its own (as vde_switch does) rather than the one shared data
// socket: every port then gets its own receive queue (Linux bounds a
// datagram socket's queue to net.unix.max_dgram_qlen, 10 by default, which
// the shared socket would split between all senders), the kernel itself
// guarantees that only the registered client sends there (the socket is
// connected to the client's address), and a full client queue can be waited
// for through the poller. Clients whose address cannot be connected to fall
// back to the shared socket.

var portSeq atomic.Uint32

func (s *Switch) openPortSocket(p *port) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		// uml_switch's {0, pad[3], pid, usec} blob with a counter in the pad.
		p.local = switchproto.SwitchSockaddr(int32(os.Getpid()), int32(time.Now().Nanosecond()/1000))
		n := portSeq.Add(1)
		p.local[3], p.local[4], p.local[5] = byte(n), byte(n>>8), byte(n>>16)
		err = bindRaw(fd, &p.local, switchproto.SockaddrSize)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EADDRINUSE) || try > 100 {
			unix.Close(fd)
			return err
		}
	}
	addr := p.sendAddr
	n := switchproto.SockaddrSize
	if err := connectRaw(fd, &addr, n); err != nil {
		unix.Close(fd)
		return err
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBufSize)
	}
	p.sock = os.NewFile(uintptr(fd), "uml_switch port socket")
	if p.sockRC, err = p.sock.SyscallConn(); err != nil {
		p.sock.Close()
		p.sock = nil
		return err
	}
	return nil
}

// portWork is the receive and send state a port loop needs while it
// handles a batch; pooled, so idle ports hold no buffers (memory grows with
// the ports that are busy at the same moment, not with the port count).
type portWork struct {
	rx *rxState
	tx *txBatch
}

var portWorkPool = sync.Pool{New: func() any {
	rx := &rxState{mm: newMmsgBatch(portBatch), bufs: make([]byte, portBatch*bufSize)}
	for i := 0; i < portBatch; i++ {
		rx.mm.set(i, rx.bufs[i*bufSize:(i+1)*bufSize], nil, 0)
	}
	return &portWork{rx: rx, tx: newTxBatch()}
}}

// portLoop receives p's frames from its own socket until it is stopped
// (read deadline in the past) and then closes the socket.
func (s *Switch) portLoop(p *port) {
	defer p.sock.Close()
	var w *portWork
	readFn := func(fd uintptr) bool {
		if w == nil {
			w = portWorkPool.Get().(*portWork)
		}
		rx := w.rx
		for i := 0; i < portBatch; i++ {
			rx.mm.hdrs[i].Hdr.Flags = 0
		}
		n, err := rx.mm.recvmmsg(int(fd), portBatch)
		if errors.Is(err, unix.EAGAIN) {
			portWorkPool.Put(w)
			w = nil
			return false
		}
		rx.n, rx.err = n, err
		return true
	}
	for {
		if err := p.sockRC.Read(readFn); err != nil {
			if w != nil {
				portWorkPool.Put(w)
			}
			return
		}
		rx, tx := w.rx, w.tx
		if rx.err != nil {
			portWorkPool.Put(w)
			w = nil
			if p.dead.Load() {
				return
			}
			s.limited(&s.limBad, s.err, "Reading port %d: %s\n", p.id, strerror(rx.err))
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Since(s.start)
		ps := s.ports.Load()
		s.macMu.Lock()
		for i := 0; i < rx.n; i++ {
			h := &rx.mm.hdrs[i]
			ln := int(h.Len)
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || ln > switchproto.MaxFrame {
				s.oversized()
				continue
			}
			if tx.n+len(ps.list) > txBatchSize {
				// Send what is queued without holding the table lock
				// (a send may wait for a busy port).
				s.macMu.Unlock()
				s.flush(tx)
				s.macMu.Lock()
			}
			s.ingress(p, ps, rx.bufs[i*bufSize:i*bufSize+ln], now, tx)
		}
		s.maybeSweep(now)
		s.macMu.Unlock()
		s.flush(tx)
		portWorkPool.Put(w)
		w = nil
	}
}
