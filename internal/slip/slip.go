// Package slip is SLIP framing (RFC 1055) as UML's slip and slirp
// transports use it: each packet is END, the packet with END and ESC bytes
// escaped, END; the receiver ends a packet at END, ignores empty packets,
// maps ESC ESC_END to END and ESC ESC_ESC to ESC, and keeps any other byte
// after an ESC as it is.
//
// Spec: shared/spec/net.md §2 ("slip and slirp").
package slip

import (
	"bufio"
	"errors"
	"io"
)

// The SLIP special bytes.
const (
	End    = 0xC0
	Esc    = 0xDB
	EscEnd = 0xDC
	EscEsc = 0xDD
)

// MaxPacket is the largest packet a Reader returns (the eth devices' MTU);
// longer ones are dropped whole.
const MaxPacket = 1500

// ErrTooLong is returned by Reader.ReadPacket for a packet longer than the
// caller's buffer; the packet is skipped.
var ErrTooLong = errors.New("slip: packet longer than the buffer")

// Append appends the encoding of packet to dst.
func Append(dst, packet []byte) []byte {
	dst = append(dst, End)
	for _, c := range packet {
		switch c {
		case End:
			dst = append(dst, Esc, EscEnd)
		case Esc:
			dst = append(dst, Esc, EscEsc)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, End)
}

// Reader decodes packets from a byte stream.
type Reader struct {
	r *bufio.Reader
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 16<<10)} }

// ReadPacket reads the next non-empty packet into b and returns its length.
// A packet that does not fit b is consumed and reported as ErrTooLong. At
// the end of the stream it returns io.EOF (a partial packet is dropped).
func (r *Reader) ReadPacket(b []byte) (int, error) {
	n, long, esc := 0, false, false
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if c == End {
			if long {
				return 0, ErrTooLong
			}
			if n > 0 {
				return n, nil
			}
			esc = false
			continue
		}
		if esc {
			esc = false
			switch c {
			case EscEnd:
				c = End
			case EscEsc:
				c = Esc
			}
		} else if c == Esc {
			esc = true
			continue
		}
		if n < len(b) {
			b[n] = c
			n++
		} else {
			long = true
		}
	}
}
