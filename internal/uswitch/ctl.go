//go:build linux

package uswitch

import (
	"errors"
	"io"
	"net"

	"github.com/umlkit/umlkit/internal/switchproto"
)

func (s *Switch) acceptLoop() {
	for {
		c, err := s.ctlLn.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.limited(&s.limBad, s.err, "accept: %v\n", err)
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
			s.limited(&s.limBad, s.err, "Too many connections (%d), refusing a new one\n", s.cfg.MaxPorts)
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.portsMu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handleConn(c)
			s.portsMu.Lock()
			delete(s.conns, c)
			s.portsMu.Unlock()
			c.Close()
		}()
	}
}

func connFD(c *net.UnixConn) int {
	fd := -1
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(f uintptr) { fd = int(f) })
	}
	return fd
}

// handleConn serves one control connection: one request, then EOF watch.
func (s *Switch) handleConn(c *net.UnixConn) {
	fd := connFD(c)
	buf := make([]byte, switchproto.MaxRequestSize)
	n, err := c.Read(buf)
	if n == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			s.out.printf("EOF from new port\n")
		} else if !s.isClosing() {
			s.err.printf("Reading request: %s\n", strerror(err))
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
			// The real one leaves the connection open without a reply.
			s.err.printf("Request for a version %d port, which this uml_switch doesn't support\n", ve.Version)
			s.drain(c)
		default:
			s.err.printf("Bad request : %v\n", err)
		}
		return
	}
	if req.Type != switchproto.TypeNewControl {
		s.out.printf("Bad request type : %d\n", req.Type)
		return
	}
	p := &port{id: fd, key: switchproto.Canonical(req.Addr[:]), sendAddr: req.Addr, conn: c, descr: req.Description()}
	p.sendLen.Store(switchproto.SockaddrSize)
	reply := s.dataAddr
	if req.Version != 0 && s.dataPath == "" && s.openPortSocket(p) == nil {
		reply = p.local
	}
	s.addPort(p)
	if s.isClosing() { // shutdown raced with this registration
		s.removePort(p)
		if p.sock != nil {
			p.sock.Close()
		}
		return
	}
	if p.sock != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.portLoop(p) }()
	}
	s.out.printf("New connection\n")
	if req.Version != 0 {
		if _, err := c.Write(reply[:]); err != nil {
			s.err.printf("Sending reply: %s\n", strerror(err))
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
			s.err.printf("Reading request: %s\n", strerror(err))
		} else {
			s.out.printf("Disconnect\n")
		}
		s.removePort(p)
		return
	}
}

// drain waits for the peer to close (or the switch to stop).
func (s *Switch) drain(c *net.UnixConn) {
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

func (s *Switch) isClosing() bool {
	s.portsMu.Lock()
	defer s.portsMu.Unlock()
	return s.closing
}
