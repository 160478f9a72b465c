package mconsole

// Reply is one kernel -> client reply packet.
type Reply struct {
	// Err is 0 for success, 1 for a generic failure, or a negative errno
	// as u32 (see Errno). Only the first packet of a logical reply has it.
	Err uint32
	// More is set on every packet but the last of a reply.
	More bool
	// Text is at most MaxText bytes and contains no NUL.
	Text string
}

// MarshalBinary encodes r as 12 + len(Text) + 1 bytes.
func (r Reply) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(nil)
}

// AppendBinary appends the encoding of r to b.
func (r Reply) AppendBinary(b []byte) ([]byte, error) {
	if len(r.Text) > MaxText {
		return b, ErrTextTooLong
	}
	var h [ReplyHeaderSize]byte
	le.PutUint32(h[offRepErr:], r.Err)
	if r.More {
		le.PutUint32(h[offRepMore:], 1)
	}
	le.PutUint32(h[offRepLen:], uint32(len(r.Text)+1))
	b = append(b, h[:]...)
	b = append(b, r.Text...)
	return append(b, 0), nil
}

// UnmarshalBinary decodes one reply packet. The len field counts the NUL and
// must be 1..512 and within the datagram; the text is read as a C string
// (up to the first NUL), as uml_mconsole does.
func (r *Reply) UnmarshalBinary(b []byte) error {
	if len(b) < ReplyHeaderSize {
		return ErrShortReply
	}
	n := le.Uint32(b[offRepLen:])
	if n == 0 || n > MaxData || int(n) > len(b)-ReplyHeaderSize {
		return ErrBadReplyLength
	}
	r.Err = le.Uint32(b[offRepErr:])
	r.More = le.Uint32(b[offRepMore:]) != 0
	r.Text = cString(b[offRepData : offRepData+int(n)])
	return nil
}

// Split cuts a logical reply into packets of at most MaxText bytes, as the
// kernel does: err is set on the first packet only, every packet but the
// last has More set, and the last has More = !final (streamed output keeps
// More on all its packets). An empty text gives one empty packet.
func Split(err uint32, text string, final bool) []Reply {
	var out []Reply
	for {
		n := min(len(text), MaxText)
		out = append(out, Reply{Err: err, More: true, Text: text[:n]})
		text = text[n:]
		err = 0
		if text == "" {
			break
		}
	}
	out[len(out)-1].More = !final
	return out
}

// Errno returns the err field for a negative errno result (-n cast to u32),
// e.g. Errno(22) = 0xFFFFFFEA for -EINVAL.
func Errno(n int) uint32 { return uint32(-int32(n)) }

// ExitStatus is uml_mconsole's exit status for a reply's err: err & 0xff.
func ExitStatus(err uint32) int { return int(err & 0xff) }
