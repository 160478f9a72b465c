package plan

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
)

// The host helper channel is a SOCK_SEQPACKET socket pair the other way:
// a K that runs as an unprivileged id block (linux run as root) cannot
// open root's disk images, make idmapped trees or reach the user's X
// display, so it sends P one HostRequest per packet and P answers with a
// HostReply, with the descriptor the request asked for. Errors carry their
// errno, so K returns the same errno to the guest.

// HostOp is a host helper request's operation.
type HostOp string

// Host helper operations, K→P.
const (
	HostOpen     HostOp = "open"     // Path, Flags: a disk file of this machine → its fd
	HostHostfs   HostOp = "hostfs"   // Path (under hostfs=), ReadOnly → idmapped tree
	HostTTY      HostOp = "tty"      // Path, Flags: a tty: device a line names → its fd
	HostWatchdog HostOp = "watchdog" // → the input of a uml_watchdog P started
	HostGuard    HostOp = "guard"    // Pid: G's host pid; P starts the guard, moves G
	HostXterm    HostOp = "xterm"    // Serial, N, with a private socket → terminal comes on it
	HostMount    HostOp = "mount"    // Path, ReadOnly: a plain disk image → loop+ext4 mount
)

// HostRequest is one request of K for host work.
type HostRequest struct {
	Op       HostOp `json:"op"`
	Path     string `json:"path,omitempty"`
	Flags    int    `json:"flags,omitempty"`
	ReadOnly bool   `json:"ro,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	Serial   bool   `json:"serial,omitempty"`
	N        int    `json:"n,omitempty"`
}

// HostReply is P's answer.
type HostReply struct {
	Errno int    `json:"errno,omitempty"` // the failure's errno, 0 if none or unknown
	Msg   string `json:"msg,omitempty"`   // the failure's text; "" on success
	Loop  string `json:"loop,omitempty"`  // HostMount: the loop device
}

// HostError is a failed host request; it unwraps to its errno.
type HostError struct {
	Errno syscall.Errno
	Msg   string
}

func (e *HostError) Error() string { return e.Msg }

func (e *HostError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// ErrBadHostRequest answers a request P does not take.
var ErrBadHostRequest = errors.New("bad request")

// Validate checks the request's operation and fields.
func (r *HostRequest) Validate() error {
	switch r.Op {
	case HostOpen, HostTTY, HostMount:
		if !filepath.IsAbs(r.Path) {
			return fmt.Errorf("%w: %s needs an absolute path", ErrBadHostRequest, r.Op)
		}
	case HostHostfs, HostWatchdog, HostXterm:
	case HostGuard:
		if r.Pid <= 0 {
			return fmt.Errorf("%w: guard needs a pid", ErrBadHostRequest)
		}
	default:
		return fmt.Errorf("%w: unknown operation %q", ErrBadHostRequest, string(r.Op))
	}
	if r.N < 0 || r.Flags < 0 {
		return ErrBadHostRequest
	}
	return nil
}

// HostReplyTo makes the reply for err (nil: success).
func HostReplyTo(err error) HostReply {
	if err == nil {
		return HostReply{}
	}
	r := HostReply{Msg: err.Error()}
	if r.Msg == "" {
		r.Msg = "failed"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = int(errno)
	}
	return r
}

// Err returns the reply's error, or nil.
func (r *HostReply) Err() error {
	if r.Msg == "" && r.Errno == 0 {
		return nil
	}
	return &HostError{Errno: syscall.Errno(r.Errno), Msg: r.Msg}
}

// MarshalHostRequest validates and encodes a host request.
func MarshalHostRequest(r *HostRequest) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return marshal(r)
}

// UnmarshalHostRequest decodes and validates a host request.
func UnmarshalHostRequest(b []byte) (*HostRequest, error) {
	var r HostRequest
	if err := unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHostRequest, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// MarshalHostReply encodes a host reply.
func MarshalHostReply(r *HostReply) ([]byte, error) { return marshal(r) }

// UnmarshalHostReply decodes a host reply.
func UnmarshalHostReply(b []byte) (*HostReply, error) {
	var r HostReply
	if err := unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bad host reply: %w", err)
	}
	if r.Errno < 0 || r.Errno > 4095 {
		return nil, fmt.Errorf("bad host reply: errno %d", r.Errno)
	}
	return &r, nil
}
