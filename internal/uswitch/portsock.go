//go:build linux

package uswitch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// Per-port data sockets. Every client port has a socket of its own,
// connect()ed to the client's data socket, and every frame for the port is
// sent on it: never by address through the shared socket. The connect
// happens once, before the owner check (owner.go), so the socket that was
// checked is the only one frames can reach.
//
// A v1/v3 client (unless a named data socket is used) is also answered with
// this socket's own address (as vde_switch does) rather than the one shared
// data socket: every port then gets its own receive queue (Linux bounds a
// datagram socket's queue to net.unix.max_dgram_qlen, 10 by default, which
// the shared socket would split between all senders), the kernel itself
// guarantees that only the registered client sends there (the socket is
// connected to the client's socket), and a full client queue can be waited
// for through the poller. v0 clients and every client when a named data
// socket is used keep sending to the shared socket, where ports are
// identified by the sender's full address; their port socket is unbound and
// only sends.

var portSeq atomic.Uint32

// openPortSocket makes p's socket and connects it to the client's data
// address; own also binds it to a fresh abstract address (p.local).
func (s *Switch) openPortSocket(p *port, own bool) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	for try := 0; own; try++ {
		// uml_switch's {0, pad[3], pid, usec} blob with a counter in the pad.
		p.local = switchproto.SwitchSockaddr(int32(os.Getpid()), int32(time.Now().Nanosecond()/1000))
		n := portSeq.Add(1)
		p.local[3], p.local[4], p.local[5] = byte(n), byte(n>>8), byte(n>>16)
		if p.vnet {
			p.local.SetVnet() // the reply tells the client the switch takes its vnet frames
		}
		err = sys.BindRaw(fd, p.local[:])
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EADDRINUSE) || try > 100 {
			unix.Close(fd)
			return os.NewSyscallError("bind", err)
		}
	}
	if err := connectClient(fd, p.sendAddr); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("connect", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBufSize)
	}
	p.sock = os.NewFile(uintptr(fd), "uml_switch port socket")
	p.own = own
	if p.sockRC, err = p.sock.SyscallConn(); err != nil {
		p.sock.Close()
		p.sock = nil
		return err
	}
	return nil
}

// connectClient connects fd to a client's data address: all 110 bytes, as
// UML binds it, or, for an abstract name the client bound shorter (the
// request carries it zero-padded), the name without its trailing zeros.
func connectClient(fd int, addr switchproto.Sockaddr) error {
	err := sys.ConnectRaw(fd, addr[:])
	if !errors.Is(err, unix.ECONNREFUSED) || !addr.IsAbstract() {
		return err
	}
	n := switchproto.SockaddrSize
	for n > 3 && addr[n-1] == 0 {
		n--
	}
	if n == switchproto.SockaddrSize {
		return err
	}
	return sys.ConnectRaw(fd, addr[:n])
}

// checkOwner refuses a port whose data socket was not created by the
// client's own uid (root's clients may name any socket). See owner.go.
func (s *Switch) checkOwner(p *port) error {
	if p.uid == 0 {
		return nil
	}
	var owner uint32
	var err error
	if cerr := p.sockRC.Control(func(fd uintptr) { owner, err = peerOwner(int(fd)) }); cerr != nil {
		return cerr
	}
	if errors.Is(err, ErrDiagUnavailable) {
		s.diagOnce.Do(func() {
			s.err.printf("Cannot check who owns data sockets (%v); checking named sockets by their file owner only\n", err)
		})
		if p.sendAddr.IsAbstract() {
			// Abstract sockets have no permissions: anyone in the network
			// namespace can send to them directly, the switch adds nothing.
			return nil
		}
		var st unix.Stat_t
		if err := unix.Stat(p.sendAddr.Path(), &st); err != nil {
			return os.NewSyscallError("stat", err)
		}
		owner = st.Uid
	} else if err != nil {
		return err
	}
	if owner != p.uid {
		return fmt.Errorf("%w: owned by uid %d", ErrNotOwner, owner)
	}
	return nil
}

// ErrNotOwner is the reason a port is refused when its data socket belongs
// to another user than the client.
var ErrNotOwner = errors.New("data socket belongs to another user")

// portWork is the receive and send state a port loop needs while it
// handles a batch; pooled, so idle ports hold no buffers (memory grows with
// the ports that are busy at the same moment, not with the port count).
type portWork struct {
	rx  *rxState
	tx  *txBatch
	ctl []byte // each message's ancillary buffer (attach.go)
}

var portWorkPool = sync.Pool{New: func() any {
	rx := &rxState{mm: sys.NewMmsg(portBatch), bufs: make([]byte, portBatch*bufSize)}
	w := &portWork{rx: rx, tx: newTxBatch(), ctl: make([]byte, portBatch*ctlSize)}
	for i := 0; i < portBatch; i++ {
		rx.mm.Set(i, rx.bufs[i*bufSize+headroom:(i+1)*bufSize], nil)
		rx.mm.SetControl(i, w.ctl[i*ctlSize:(i+1)*ctlSize])
	}
	return w
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
			rx.mm.Hdrs[i].Hdr.Flags = 0
			rx.mm.Hdrs[i].Hdr.SetControllen(ctlSize)
		}
		n, err := rx.mm.Recvmmsg(int(fd), 0, portBatch, unix.MSG_DONTWAIT)
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
			s.limited(&s.limBad, s.err, "Reading port %d: %s\n", p.id, sys.Strerror(rx.err))
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Since(s.start)
		ps := s.ports.Load()
		s.macMu.Lock()
		for i := 0; i < rx.n; i++ {
			h := &rx.mm.Hdrs[i]
			ln := int(h.Len)
			if h.Hdr.Controllen > 0 {
				base := i * bufSize
				s.macMu.Unlock()
				s.control(p, rx.bufs[base+headroom:base+headroom+min(ln, bufSize-headroom)], w.ctl[i*ctlSize:i*ctlSize+int(h.Hdr.Controllen)])
				s.macMu.Lock()
				continue
			}
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || ln > p.maxDatagram() {
				s.oversized(p)
				continue
			}
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
		portWorkPool.Put(w)
		w = nil
	}
}
