package mconsole

import "errors"

// Decoding errors.
var (
	// ErrShortRequest: fewer bytes than the 12-byte request header.
	ErrShortRequest = errors.New("mconsole request shorter than its 12-byte header")
	// ErrBadMagic: the request does not start with 0xCAFEBABE; the kernel
	// treats the sender as a "version 0" client (see Version0Reply).
	ErrBadMagic = errors.New("mconsole request: bad magic (version 0 client)")
	// ErrRequestTooLarge: the len field is >= 512; the kernel replies
	// "Request too large" and drops the request.
	ErrRequestTooLarge = errors.New("mconsole request: length field >= 512")
	// ErrShortReply: fewer bytes than the 12-byte reply header.
	ErrShortReply = errors.New("mconsole reply shorter than its 12-byte header")
	// ErrBadReplyLength: the reply's len field is 0, above 512 or beyond the
	// datagram.
	ErrBadReplyLength = errors.New("mconsole reply: bad length field")
	// ErrTextTooLong: text that does not fit one packet (> 511 bytes).
	ErrTextTooLong = errors.New("mconsole: text longer than 511 bytes")
	// ErrShortNotify: fewer bytes than the 16-byte notify header.
	ErrShortNotify = errors.New("mconsole notify message shorter than its 16-byte header")
	// ErrBadNotify: bad magic, or a len field above 512 or beyond the datagram.
	ErrBadNotify = errors.New("mconsole notify message: bad magic or length")
)
