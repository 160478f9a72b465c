//go:build linux

package sys

import "golang.org/x/sys/unix"

// Mmsg is a reusable batch of message headers for recvmmsg(2) and
// sendmmsg(2): one buffer and an optional raw socket address per message.
// It is not safe for concurrent use.
type Mmsg struct {
	// Hdrs are the headers handed to the kernel. After Recvmmsg, for each
	// message i received, Hdrs[i].Len is the number of bytes stored (at
	// most the buffer's length; MSG_TRUNC in Hdrs[i].Hdr.Flags says the
	// datagram was longer) and Hdrs[i].Hdr.Namelen the length of its
	// sender's address. The kernel overwrites Namelen and Flags, so a
	// caller reusing entries without Set resets them first.
	Hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

// NewMmsg returns a batch of n messages, all empty until Set.
func NewMmsg(n int) Mmsg {
	return Mmsg{Hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n)}
}

// Set points message i at buf and at the raw address name (none if name is
// empty; its length is len(name)), and clears its length and flags. The
// batch refers to buf and name until they are Set again.
func (m *Mmsg) Set(i int, buf, name []byte) {
	iov := &m.iovs[i]
	if len(buf) > 0 {
		iov.Base = &buf[0]
	} else {
		iov.Base = nil
	}
	iov.SetLen(len(buf))
	h := &m.Hdrs[i].Hdr
	h.Iov = iov
	h.Iovlen = 1
	if len(name) > 0 {
		h.Name = &name[0]
		h.Namelen = uint32(len(name))
	} else {
		h.Name = nil
		h.Namelen = 0
	}
	h.Flags = 0
	h.Control = nil
	h.Controllen = 0
	m.Hdrs[i].Len = 0
}

// SetControl gives message i the ancillary-data buffer ctl (recvmmsg
// stores SCM_RIGHTS there; the kernel sets Controllen to what it used, so
// a caller reusing entries resets it). Set clears it.
func (m *Mmsg) SetControl(i int, ctl []byte) {
	h := &m.Hdrs[i].Hdr
	if len(ctl) > 0 {
		h.Control = &ctl[0]
	} else {
		h.Control = nil
	}
	h.SetControllen(len(ctl))
}

// BufLen returns the length of message i's buffer as last Set.
func (m *Mmsg) BufLen(i int) int { return int(m.iovs[i].Len) }
