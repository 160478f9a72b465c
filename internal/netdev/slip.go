//go:build linux

package netdev

import (
	"errors"
	"os"
	"sync"

	"github.com/umlkit/umlkit/internal/slip"
	"github.com/umlkit/umlkit/internal/sys"
)

// Slip is the transport of UML's slip and slirp devices: IPv4 packets
// (not Ethernet frames; pair it with a CreateTun device) SLIP-framed over a
// byte stream, the slirp process's stdin and stdout.
type Slip struct {
	f   *os.File
	r   *slip.Reader
	wmu sync.Mutex
	out []byte
}

// NewSlip wraps the stream f (which it owns from now on).
func NewSlip(f *os.File) (*Slip, error) {
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		return nil, err
	}
	return &Slip{f: p, r: slip.NewReader(p)}, nil
}

// ReadFrame implements Transport: the next packet; over-long ones are
// skipped.
func (s *Slip) ReadFrame(b []byte) (int, error) {
	for {
		n, err := s.r.ReadPacket(b)
		if errors.Is(err, slip.ErrTooLong) {
			continue
		}
		return n, err
	}
}

// WriteFrame implements Transport.
func (s *Slip) WriteFrame(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.out = slip.Append(s.out[:0], b)
	_, err := s.f.Write(s.out)
	return err
}

// Close implements Transport.
func (s *Slip) Close() error { return s.f.Close() }

var _ Transport = (*Slip)(nil)
