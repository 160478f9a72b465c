package mconsole

// NotifyType is the type of a notify-socket message.
type NotifyType uint32

// Notify types.
const (
	NotifySocket NotifyType = 0 // data: socket path + NUL, sent at mconsole init
	NotifyPanic  NotifyType = 1 // data: panic message + NUL
	NotifyHang   NotifyType = 2 // sent by uml_watchdog, not by the kernel
	NotifyUser   NotifyType = 3 // data: bytes written to the guest's /proc/mconsole
)

func (t NotifyType) String() string {
	switch t {
	case NotifySocket:
		return "socket"
	case NotifyPanic:
		return "panic"
	case NotifyHang:
		return "hang"
	case NotifyUser:
		return "user"
	}
	return "unknown"
}

// Notify is a message on the notify socket (mconsole=notify:<path>).
type Notify struct {
	Type NotifyType
	Data []byte // at most MaxData bytes
}

// MarshalBinary encodes n with the kernel's 16-byte header.
func (n Notify) MarshalBinary() ([]byte, error) {
	if len(n.Data) > MaxData {
		return nil, ErrTextTooLong
	}
	b := make([]byte, NotifyHeaderSize+len(n.Data))
	le.PutUint32(b[offNotMagic:], Magic)
	le.PutUint32(b[offNotVersion:], Version)
	le.PutUint32(b[offNotType:], uint32(n.Type))
	le.PutUint32(b[offNotLen:], uint32(len(n.Data)))
	copy(b[offNotData:], n.Data)
	return b, nil
}

// UnmarshalBinary decodes a notify datagram. uml_watchdog's 24-byte HANG
// packet (WatchdogHangPacket) is recognised and decodes as NotifyHang with no
// data; anything else must carry the kernel's header (version not checked).
func (n *Notify) UnmarshalBinary(b []byte) error {
	if IsWatchdogHang(b) {
		n.Type, n.Data = NotifyHang, nil
		return nil
	}
	if len(b) < NotifyHeaderSize {
		return ErrShortNotify
	}
	l := le.Uint32(b[offNotLen:])
	if le.Uint32(b[offNotMagic:]) != Magic || l > MaxData || int(l) > len(b)-NotifyHeaderSize {
		return ErrBadNotify
	}
	n.Type = NotifyType(le.Uint32(b[offNotType:]))
	n.Data = append([]byte(nil), b[offNotData:offNotData+int(l)]...)
	return nil
}

// WatchdogHangSize is the size of uml_watchdog's HANG packet on amd64.
const WatchdogHangSize = 24

// WatchdogHangPacket returns the 24 bytes uml_watchdog -mconsole sends when
// the guest stops pinging: u64 magic, s32 version 2, s32 type 2 (HANG),
// s32 len 0, 4 bytes of padding (misc-tools.md §1).
func WatchdogHangPacket() []byte {
	b := make([]byte, WatchdogHangSize)
	le.PutUint64(b[0:], uint64(Magic))
	le.PutUint32(b[8:], Version)
	le.PutUint32(b[12:], uint32(NotifyHang))
	return b
}

// IsWatchdogHang reports whether b is exactly uml_watchdog's HANG packet.
func IsWatchdogHang(b []byte) bool {
	return len(b) == WatchdogHangSize && string(b) == string(WatchdogHangPacket())
}
