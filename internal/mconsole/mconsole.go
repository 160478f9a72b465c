// Package mconsole encodes and decodes the datagrams of UML's management
// console: client requests, kernel replies (split into 511-character parts
// chained with "more"), notify-socket messages and uml_watchdog's 24-byte
// HANG packet.
//
// It is a pure format package: no I/O, no syscalls. All integers are host
// byte order, which is little-endian on every platform UML runs on (amd64);
// the package encodes little-endian explicitly.
//
// Wire format: shared/spec/mconsole.md §2 (request), §3 (reply), §5 (notify);
// the watchdog packet: shared/spec/misc-tools.md §1.
package mconsole

import "encoding/binary"

// Protocol constants.
const (
	Magic   uint32 = 0xCAFEBABE // first word of requests and notify messages
	Version uint32 = 2          // the only protocol version the 6.1 kernel serves

	MaxData          = 512                  // size of the text field of a request or reply
	MaxText          = MaxData - 1          // longest text in one reply packet (plus its NUL)
	RequestSize      = offReqData + MaxData // 524: what uml_mconsole always sends
	ReplyHeaderSize  = offRepData           // 12
	MaxReplySize     = ReplyHeaderSize + MaxData
	NotifyHeaderSize = offNotData // 16
	MaxNotifySize    = NotifyHeaderSize + MaxData
)

// Request layout.
const (
	offReqMagic   = 0
	offReqVersion = 4
	offReqLen     = 8
	offReqData    = 12
)

// Reply layout.
const (
	offRepErr  = 0
	offRepMore = 4
	offRepLen  = 8
	offRepData = 12
)

// Notify layout.
const (
	offNotMagic   = 0
	offNotVersion = 4
	offNotType    = 8
	offNotLen     = 12
	offNotData    = 16
)

var le = binary.LittleEndian

// cString returns b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
