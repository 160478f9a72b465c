//go:build linux

package uswitch

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// Control connections are limited three ways (docs/uml_switch.md, "Limits"):
// MaxPorts in all, MaxPortsPerUID per peer uid (SO_PEERCRED; root is not
// counted against it), and IdleTimeout for the request to arrive. A
// connection over a limit is closed at once, without a reply.

func (s *Switch) acceptLoop() {
	for {
		c, err := s.ctlLn.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.limited(&s.limBad, s.err, "accept: %v\n", err)
			// EMFILE and friends: do not spin while the condition lasts.
			time.Sleep(20 * time.Millisecond)
			continue
		}
		uid, err := s.cfg.peerUID(c)
		if err != nil {
			s.limited(&s.limConn, s.err, "Refusing a connection: %v\n", err)
			c.Close()
			continue
		}
		s.portsMu.Lock()
		if s.closing {
			s.portsMu.Unlock()
			c.Close()
			return
		}
		if len(s.conns) >= s.cfg.MaxPorts {
			s.portsMu.Unlock()
			s.limited(&s.limConn, s.err, "Too many connections (%d), refusing a new one\n", s.cfg.MaxPorts)
			c.Close()
			continue
		}
		if uid != 0 && s.cfg.MaxPortsPerUID > 0 && s.perUID[uid] >= s.cfg.MaxPortsPerUID {
			s.portsMu.Unlock()
			s.limited(&s.limConn, s.err, "Too many connections from uid %d (%d), refusing a new one\n", uid, s.cfg.MaxPortsPerUID)
			c.Close()
			continue
		}
		s.conns[c] = uid
		s.perUID[uid]++
		s.wg.Add(1)
		s.portsMu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handleConn(c, uid)
			s.portsMu.Lock()
			delete(s.conns, c)
			if s.perUID[uid]--; s.perUID[uid] <= 0 {
				delete(s.perUID, uid)
			}
			s.portsMu.Unlock()
			c.Close()
		}()
	}
}

// peerCredUID returns the uid of the process that connected c.
func peerCredUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	return cred.Uid, nil
}

func connFD(c *net.UnixConn) int {
	fd := -1
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(f uintptr) { fd = int(f) })
	}
	return fd
}

// handleConn serves one control connection: one request, then EOF watch.
func (s *Switch) handleConn(c *net.UnixConn, uid uint32) {
	fd := connFD(c)
	buf := make([]byte, switchproto.MaxRequestSize)
	if s.cfg.IdleTimeout > 0 {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	}
	n, err := c.Read(buf)
	if n == 0 {
		switch {
		case err == nil || errors.Is(err, io.EOF):
			s.out.printf("EOF from new port\n")
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.idle(uid)
		case !s.isClosing():
			s.err.printf("Reading request: %s\n", sys.Strerror(err))
		}
		return
	}
	var req switchproto.Request
	if err := req.UnmarshalBinary(buf[:n]); err != nil {
		var ve *switchproto.VersionError
		switch {
		case errors.As(err, &ve) && ve.Version == 2:
			s.err.printf("Version 2 is not supported\n")
		case errors.As(err, &ve):
			// The real one leaves the connection open without a reply;
			// the idle timeout still applies (it never completes).
			s.err.printf("Request for a version %d port, which this uml_switch doesn't support\n", ve.Version)
			if s.drain(c) {
				s.idle(uid)
			}
		default:
			s.err.printf("Bad request : %v\n", err)
		}
		return
	}
	c.SetReadDeadline(time.Time{})
	if req.Type != switchproto.TypeNewControl {
		s.out.printf("Bad request type : %d\n", req.Type)
		return
	}
	p := &port{id: fd, key: switchproto.Canonical(req.Addr[:]), sendAddr: req.Addr, uid: uid, conn: c, descr: req.Description()}
	// Ports send to the shared socket (and so are told its address) for
	// v0 and whenever it is a named socket; otherwise to their own, and
	// then a client that asks for the vnet extension gets it.
	own := req.Version != 0 && s.dataPath == ""
	p.vnet = own && req.Addr.HasVnet()
	if err := s.openPortSocket(p, own); err != nil {
		s.limited(&s.limRef, s.err, "Refusing port of uid %d: data socket %s: %s\n", uid, p.name(), sys.Strerror(err))
		return
	}
	if err := s.checkOwner(p); err != nil {
		s.limited(&s.limRef, s.err, "Refusing port of uid %d: data socket %s: %v\n", uid, p.name(), err)
		p.sock.Close()
		return
	}
	if !p.own {
		defer p.sock.Close() // nothing reads it: close it when the port goes
	}
	reply := s.dataAddr
	if p.own {
		reply = p.local
	}
	s.addPort(p)
	if s.isClosing() { // shutdown raced with this registration
		s.removePort(p)
		if p.own {
			p.sock.Close()
		}
		return
	}
	if p.own {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.portLoop(p) }()
	}
	s.out.printf("New connection\n")
	if req.Version != 0 {
		if _, err := c.Write(reply[:]); err != nil {
			s.err.printf("Sending reply: %s\n", sys.Strerror(err))
			s.removePort(p)
			return
		}
	}
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.out.printf("Bad request\n")
			continue
		}
		if s.isClosing() {
			return
		}
		if err != nil && !errors.Is(err, io.EOF) {
			s.err.printf("Reading request: %s\n", sys.Strerror(err))
		} else {
			s.out.printf("Disconnect\n")
		}
		s.removePort(p)
		return
	}
}

func (s *Switch) idle(uid uint32) {
	s.limited(&s.limIdle, s.err, "Closing connection of uid %d: no request within %v\n", uid, s.cfg.IdleTimeout)
}

// drain waits for the peer to close, the switch to stop or the read
// deadline; it reports whether the deadline ended it.
func (s *Switch) drain(c *net.UnixConn) bool {
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

func (s *Switch) isClosing() bool {
	s.portsMu.Lock()
	defer s.portsMu.Unlock()
	return s.closing
}
