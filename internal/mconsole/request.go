package mconsole

// Request is a client -> kernel command datagram.
type Request struct {
	// Version is the protocol version the client claims; the kernel answers
	// only Version (2) but processes other versions after a warning reply.
	Version uint32
	// Text is the command line, at most MaxText bytes, without NUL.
	Text string
}

// NewRequest returns a version-2 request for text, truncated to MaxText
// bytes as uml_mconsole does.
func NewRequest(text string) Request {
	if len(text) > MaxText {
		text = text[:MaxText]
	}
	return Request{Version: Version, Text: text}
}

// MarshalBinary returns the full 524-byte datagram uml_mconsole sends:
// magic, version, len, the text NUL-terminated and zero-filled.
func (r Request) MarshalBinary() ([]byte, error) {
	if len(r.Text) > MaxText {
		return nil, ErrTextTooLong
	}
	b := make([]byte, RequestSize)
	le.PutUint32(b[offReqMagic:], Magic)
	le.PutUint32(b[offReqVersion:], r.Version)
	le.PutUint32(b[offReqLen:], uint32(len(r.Text)))
	copy(b[offReqData:], r.Text)
	return b, nil
}

// UnmarshalBinary decodes a request datagram the way the 6.1 kernel does:
// the datagram may be shorter than 524 bytes (missing bytes read as zero);
// a bad magic (or fewer than 4 bytes) is ErrBadMagic; a len field >= 512 is
// ErrRequestTooLarge; the text is data[:len] cut at its first NUL. A version
// other than 2 is not an error here: the caller checks r.Version.
func (r *Request) UnmarshalBinary(b []byte) error {
	var buf [RequestSize]byte
	copy(buf[:], b)
	if len(b) < 4 || le.Uint32(buf[offReqMagic:]) != Magic {
		return ErrBadMagic
	}
	n := le.Uint32(buf[offReqLen:])
	if n >= MaxData {
		return ErrRequestTooLarge
	}
	r.Version = le.Uint32(buf[offReqVersion:])
	r.Text = cString(buf[offReqData : offReqData+int(n)])
	return nil
}

// Version0Reply is the bare datagram (no header, no NUL) the kernel sends to
// a client whose request has a bad magic.
const Version0Reply = "ERR Version 0 mconsole clients are not supported by this driver"

// Kernel reply texts for protocol-level errors (err = 1).
const (
	TextTooLarge        = "Request too large"
	TextVersionMismatch = "This driver only supports version 2 clients"
	TextUnknownCommand  = "Unknown command"
)
