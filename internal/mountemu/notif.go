package mountemu

import "errors"

// Sizes of struct seccomp_notif and struct seccomp_notif_resp.
const (
	NotifSize     = 80
	NotifRespSize = 24

	offNotifID    = 0
	offNotifPid   = 8
	offNotifFlags = 12
	offNotifNr    = 16
	offNotifArch  = 20
	offNotifIP    = 24
	offNotifArgs  = 32
)

// ErrShortNotif is returned when a buffer is smaller than struct seccomp_notif.
var ErrShortNotif = errors.New("seccomp notification: short buffer")

// Notif is struct seccomp_notif: one trapped system call.
type Notif struct {
	ID    uint64
	Pid   uint32 // in K's pid namespace
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

// UnmarshalBinary decodes struct seccomp_notif in host byte order.
func (n *Notif) UnmarshalBinary(b []byte) error {
	if len(b) < NotifSize {
		return ErrShortNotif
	}
	n.ID = ne.Uint64(b[offNotifID:])
	n.Pid = ne.Uint32(b[offNotifPid:])
	n.Flags = ne.Uint32(b[offNotifFlags:])
	n.Nr = int32(ne.Uint32(b[offNotifNr:]))
	n.Arch = ne.Uint32(b[offNotifArch:])
	n.IP = ne.Uint64(b[offNotifIP:])
	for i := range n.Args {
		n.Args[i] = ne.Uint64(b[offNotifArgs+8*i:])
	}
	return nil
}

// MarshalBinary encodes struct seccomp_notif.
func (n *Notif) MarshalBinary() ([]byte, error) {
	b := make([]byte, NotifSize)
	ne.PutUint64(b[offNotifID:], n.ID)
	ne.PutUint32(b[offNotifPid:], n.Pid)
	ne.PutUint32(b[offNotifFlags:], n.Flags)
	ne.PutUint32(b[offNotifNr:], uint32(n.Nr))
	ne.PutUint32(b[offNotifArch:], n.Arch)
	ne.PutUint64(b[offNotifIP:], n.IP)
	for i, a := range n.Args {
		ne.PutUint64(b[offNotifArgs+8*i:], a)
	}
	return b, nil
}

// Reply is the answer to one notification.
type Reply struct {
	// Continue lets the kernel run the call as the guest made it.
	Continue bool
	// Errno, when not zero, fails the call; otherwise it returns Val.
	Errno int32
	Val   int64
}

// flagContinue is SECCOMP_USER_NOTIF_FLAG_CONTINUE.
const flagContinue = 1

// encodeResp encodes struct seccomp_notif_resp for id.
func encodeResp(id uint64, r Reply) []byte {
	b := make([]byte, NotifRespSize)
	ne.PutUint64(b[0:], id)
	if r.Continue {
		ne.PutUint32(b[20:], flagContinue)
		return b
	}
	if r.Errno != 0 {
		ne.PutUint32(b[16:], uint32(-r.Errno))
		return b
	}
	ne.PutUint64(b[8:], uint64(r.Val))
	return b
}
