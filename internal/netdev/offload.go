//go:build linux

package netdev

import (
	"errors"

	"github.com/umlkit/umlkit/internal/gso"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// Offloads for transports whose peer takes only standard frames: the
// guest's device still gets vnet headers and TSO/checksum offloads
// (plan.Eth.Offload without Vnet), so the relay reads a 64 KiB segment in
// one read instead of forty-five frames, and segments and checksums it
// here (internal/gso) before sending the frames in one batch where the
// transport can (FramesWriter).

// FramesWriter is a Transport that sends several frames in one call
// (sendmmsg); a frame that does not fit the peer's queue is dropped.
type FramesWriter interface {
	WriteFrames(frames [][]byte) error
}

// ForGuest returns the transport the relay of device e uses on the host
// side: tr itself, or, when the guest's device offloads to a transport of
// standard frames, tr behind software segmentation.
func ForGuest(e plan.Eth, tr Transport) Transport {
	if !e.Offload || e.Vnet {
		return tr
	}
	s := &segmenting{Transport: tr}
	s.batch, _ = tr.(FramesWriter)
	return s
}

// softOffload gives the guest's device of o offloads that K resolves in
// software (ForGuest): for transports of standard frames.
func softOffload(o *Opened, err error) (*Opened, error) {
	if err == nil {
		o.Eth.Offload = true
	}
	return o, err
}

// GuestVnet reports whether device e's guest side carries vnet headers.
func GuestVnet(e plan.Eth) bool { return e.Vnet || e.Offload }

// segmenting carries a guest device's vnet frames over a transport of
// standard frames. Each direction is used by one relay pump.
type segmenting struct {
	Transport
	batch FramesWriter // nil: one WriteFrame per segment
	seg   gso.Segmenter
	inner [][]byte // ReadFrames' views past the headers
}

const vnetHdrLen = gso.HdrLen

// ReadFrame reads a standard frame after a zero vnet header (nothing to
// finish: the guest checks the checksums).
func (t *segmenting) ReadFrame(b []byte) (int, error) {
	n, err := t.Transport.ReadFrame(b[gso.HdrLen:])
	if err != nil || n == 0 {
		return 0, err
	}
	clear(b[:gso.HdrLen])
	return gso.HdrLen + n, nil
}

// WriteFrames implements FramesWriter: each frame's segments go in one
// batch (the segmenter's buffers hold one frame's at a time).
func (t *segmenting) WriteFrames(frames [][]byte) error {
	var errs error
	for _, f := range frames {
		errs = errors.Join(errs, t.WriteFrame(f))
	}
	return errs
}

// WriteFrame sends the standard frames of the guest's vnet frame b; a
// malformed one is dropped.
func (t *segmenting) WriteFrame(b []byte) error {
	h, err := gso.ParseHdr(b)
	if err != nil {
		return err
	}
	frames, err := t.seg.Segment(h, b[gso.HdrLen:])
	if err != nil {
		return err
	}
	if t.batch != nil && len(frames) > 1 {
		return t.batch.WriteFrames(frames)
	}
	for _, f := range frames {
		if err := t.Transport.WriteFrame(f); err != nil {
			return err
		}
	}
	return nil
}
