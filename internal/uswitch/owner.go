//go:build linux

package uswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Who owns the socket a port socket is connected to.
//
// A client names its data socket by address; the switch connect()s a socket
// of its own to that address once (openPortSocket) and from then on sends
// only on that connected socket. The kernel resolves the address at
// connect() time and pins the socket object it found: if the client later
// unlinks its socket, replaces the path with a symlink or rebinds the
// abstract name elsewhere, sends fail (ECONNREFUSED) instead of reaching the
// new socket. So the check below, done after connect(), looks at the one
// socket frames can ever reach: the connected peer, found through
// NETLINK_SOCK_DIAG (unix_diag: our socket's inode → UNIX_DIAG_PEER → the
// peer's UNIX_DIAG_UID, the uid that created it). There is no window
// between check and use.

// unix_diag (linux/unix_diag.h), not in x/sys.
const (
	udiagShowPeer  = 0x04
	udiagShowUID   = 0x40
	unixDiagPeer   = 2
	unixDiagUID    = 7
	unixDiagReqLen = 24 // family, protocol, pad, states, ino, show, cookie[2]
	unixDiagMsgLen = 16 // family, type, state, pad, ino, cookie[2]
)

// Errors of the owner check.
var (
	// ErrDiagUnavailable means the kernel cannot answer unix_diag queries
	// (no unix_diag module, or a kernel before 5.3 without UNIX_DIAG_UID).
	ErrDiagUnavailable = errors.New("unix_diag socket owner lookup unavailable")
	// ErrNoPeer means the connected peer could not be found in the switch's
	// network namespace (it closed, or lives in another namespace).
	ErrNoPeer = errors.New("peer socket not found")
)

// sockDiag is one unix_diag lookup result.
type sockDiag struct {
	typ     uint8
	peer    uint32 // inode of the peer, 0 if none
	uid     uint32
	haveUID bool
}

// diagUnix asks the kernel about the unix socket with inode ino.
func diagUnix(ino uint32, show uint32) (sockDiag, error) {
	var d sockDiag
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return d, fmt.Errorf("%w: %v", ErrDiagUnavailable, os.NewSyscallError("socket NETLINK_SOCK_DIAG", err))
	}
	defer unix.Close(fd)
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // seq
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], ^uint32(0)) // every state
	ne.PutUint32(r[8:], ino)
	ne.PutUint32(r[12:], show)
	ne.PutUint32(r[16:], ^uint32(0)) // INET_DIAG_NOCOOKIE
	ne.PutUint32(r[20:], ^uint32(0))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return d, fmt.Errorf("%w: %v", ErrDiagUnavailable, os.NewSyscallError("sendto NETLINK_SOCK_DIAG", err))
	}
	// The kernel answers a non-dump request synchronously, inside sendto:
	// the reply is queued already.
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
	if err != nil {
		return d, fmt.Errorf("%w: %v", ErrDiagUnavailable, os.NewSyscallError("recvfrom NETLINK_SOCK_DIAG", err))
	}
	if n < unix.NLMSG_HDRLEN || int(ne.Uint32(buf)) < unix.NLMSG_HDRLEN || int(ne.Uint32(buf)) > n {
		return d, fmt.Errorf("%w: bad reply", ErrDiagUnavailable)
	}
	typ, data := ne.Uint16(buf[4:]), buf[unix.NLMSG_HDRLEN:ne.Uint32(buf)]
	if typ == unix.NLMSG_ERROR {
		errno := unix.Errno(0)
		if len(data) >= 4 {
			errno = unix.Errno(-int32(ne.Uint32(data)))
		}
		if errno == unix.ENOENT {
			return d, ErrNoPeer
		}
		return d, fmt.Errorf("%w: %v", ErrDiagUnavailable, errno)
	}
	if typ != unix.SOCK_DIAG_BY_FAMILY || len(data) < unixDiagMsgLen {
		return d, fmt.Errorf("%w: unexpected reply type %d", ErrDiagUnavailable, typ)
	}
	d.typ = data[1]
	for a := data[unixDiagMsgLen:]; len(a) >= unix.SizeofRtAttr; {
		l := int(ne.Uint16(a[0:]))
		if l < unix.SizeofRtAttr || l > len(a) {
			break
		}
		v := a[unix.SizeofRtAttr:l]
		switch ne.Uint16(a[2:]) {
		case unixDiagPeer:
			if len(v) >= 4 {
				d.peer = ne.Uint32(v)
			}
		case unixDiagUID:
			if len(v) >= 4 {
				d.uid, d.haveUID = ne.Uint32(v), true
			}
		}
		a = a[min(len(a), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
	}
	return d, nil
}

// peerOwner returns the uid that created the datagram socket fd is
// connected to.
func peerOwner(fd int) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	self, err := diagUnix(uint32(st.Ino), udiagShowPeer)
	if errors.Is(err, ErrNoPeer) {
		// Our own socket must be there: the lookup itself does not work.
		return 0, fmt.Errorf("%w: own socket not found", ErrDiagUnavailable)
	}
	if err != nil {
		return 0, err
	}
	if self.peer == 0 {
		return 0, ErrNoPeer
	}
	peer, err := diagUnix(self.peer, udiagShowUID)
	if err != nil {
		return 0, err
	}
	if !peer.haveUID {
		return 0, fmt.Errorf("%w: kernel does not report UNIX_DIAG_UID", ErrDiagUnavailable)
	}
	if peer.typ != unix.SOCK_DGRAM {
		return 0, fmt.Errorf("peer is not a datagram socket (type %d)", peer.typ)
	}
	return peer.uid, nil
}
