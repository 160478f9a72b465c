package plan

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The control channel is a SOCK_SEQPACKET socket pair between P and K: P
// sends one Request per packet (with at most MaxRequestFDs descriptors:
// an eth device's host side, the Eth.Name one first, then the Eth.RxName
// one if the transport has it), K answers with one Reply carrying the
// request's Seq, so an answer that arrives after its request timed out is
// dropped instead of being taken for the next one's. Halt and reboot
// travel as signals (SIGUSR1, SIGUSR2) so they work even when K is busy.

// Op is a control request's operation.
type Op string

// Control operations, P→K.
const (
	OpUname     Op = "uname"      // Reply.Text: sysname nodename release version machine
	OpCAD       Op = "cad"        // Ctrl-Alt-Del
	OpStop      Op = "stop"       // SIGSTOP the guest (no freezer)
	OpGo        Op = "go"         // SIGCONT the guest
	OpUbdAdd    Op = "ubd-add"    // Disk
	OpUbdRemove Op = "ubd-remove" // Unit
	OpEthAdd    Op = "eth-add"    // Eth, with the host side's descriptors
	OpEthRemove Op = "eth-remove" // Arg: the device (eth0, vec1)
	OpSysrq     Op = "sysrq"      // Arg: the key
	OpStack     Op = "stack"      // Pid
	OpProc      Op = "proc"       // Arg: path below the guest's /proc
	OpLine      Op = "line"       // Arg: line name; Reply.Text: its config
	OpLineSet   Op = "lineset"    // Arg: line name, Spec: new spec
)

var ops = map[Op]bool{OpUname: true, OpCAD: true, OpStop: true, OpGo: true, OpUbdAdd: true, OpUbdRemove: true,
	OpEthAdd: true, OpEthRemove: true, OpSysrq: true, OpStack: true, OpProc: true, OpLine: true, OpLineSet: true}

// Request is one control request.
type Request struct {
	Seq  uint64 `json:"seq"`
	Op   Op     `json:"op"`
	Unit int    `json:"unit,omitempty"`
	Pid  int    `json:"pid,omitempty"`
	Disk *Disk  `json:"disk,omitempty"`
	Eth  *Eth   `json:"eth,omitempty"`
	Arg  string `json:"arg,omitempty"`
	Spec string `json:"spec,omitempty"`
}

// Reply is K's answer to a Request.
type Reply struct {
	Seq  uint64 `json:"seq"`
	Code Code   `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`  // the error's text when Code is not OK
	Text string `json:"text,omitempty"` // the answer when Code is OK
}

// MaxReplyText bounds Reply.Text (a SOCK_SEQPACKET message must fit the
// socket buffer); longer answers are cut.
const MaxReplyText = 128 << 10

// MaxMessage is the size of a receive buffer that holds any message.
const MaxMessage = MaxReplyText + 4096

// MaxRequestFDs is the most descriptors a request carries: an eth-add's
// host side and its receive side (Eth.RxName).
const MaxRequestFDs = 2

// Code classifies a failed request, so both sides compare errors with
// errors.Is instead of by their text.
type Code uint16

// Codes of Reply and Error.
const (
	OK             Code = iota
	CodeFailed          // anything else; Msg says what
	CodeBadRequest      // a request this K does not understand
	CodeNotRunning      // the guest (or K) is not running
	CodeExists          // the device is already configured
	CodeNoDevice        // the device does not exist
	CodeBusy            // the guest has the device open (or it holds the root)
	CodeParse           // a line spec does not parse
	CodeNotFound        // stack: no such pid; proc: no such file
	CodeUnreadable      // proc: the file cannot be read
	numCodes
)

var codeNames = [numCodes]string{"ok", "failed", "bad request", "not running", "exists", "no such device", "busy", "parse error", "not found", "unreadable"}

func (c Code) String() string {
	if c < numCodes {
		return codeNames[c]
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Error is a coded error of the control channel.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return e.Code.String()
}

// Is matches a sentinel with the same code (ErrBusy and friends).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == ""
}

// Sentinels for errors.Is.
var (
	ErrFailed      = &Error{Code: CodeFailed}
	ErrBadRequest  = &Error{Code: CodeBadRequest}
	ErrNotRunning  = &Error{Code: CodeNotRunning}
	ErrExists      = &Error{Code: CodeExists}
	ErrNoDevice    = &Error{Code: CodeNoDevice}
	ErrBusy        = &Error{Code: CodeBusy}
	ErrParse       = &Error{Code: CodeParse}
	ErrNotFound    = &Error{Code: CodeNotFound}
	ErrUnreadable  = &Error{Code: CodeUnreadable}
	errZeroCodeErr = errors.New("plan: an error with code OK")
)

// Errorf returns a coded error with a message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

// ReplyTo makes the reply to req: text on success, err's code and text on
// failure (an uncoded error is CodeFailed).
func ReplyTo(req *Request, text string, err error) Reply {
	r := Reply{Seq: req.Seq}
	if err == nil {
		if len(text) > MaxReplyText {
			text = text[:MaxReplyText]
		}
		r.Text = text
		return r
	}
	r.Code, r.Msg = CodeFailed, err.Error()
	var e *Error
	if errors.As(err, &e) && e.Code != OK {
		r.Code = e.Code
	}
	return r
}

// Err returns the reply's error, or nil.
func (r *Reply) Err() error {
	if r.Code == OK {
		return nil
	}
	return &Error{Code: r.Code, Msg: r.Msg}
}

// Validate checks that a request names a known operation and carries what
// it needs.
func (r *Request) Validate() error {
	if !ops[r.Op] {
		return Errorf(CodeBadRequest, "unknown control request %q", string(r.Op))
	}
	switch r.Op {
	case OpUbdAdd:
		if r.Disk == nil || r.Disk.Unit < 0 || r.Disk.Unit >= 16 {
			return Errorf(CodeBadRequest, "bad ubd-add request")
		}
	case OpEthAdd:
		if r.Eth == nil || r.Eth.Unit < 0 {
			return Errorf(CodeBadRequest, "bad eth-add request")
		}
	case OpUbdRemove:
		if r.Unit < 0 {
			return Errorf(CodeBadRequest, "bad %s request", r.Op)
		}
	case OpEthRemove:
		if r.Arg == "" {
			return Errorf(CodeBadRequest, "bad %s request", r.Op)
		}
	case OpSysrq:
		if r.Arg == "" {
			return Errorf(CodeBadRequest, "bad sysrq request")
		}
	}
	return nil
}

// MarshalRequest validates and encodes a request for the control channel.
func MarshalRequest(r *Request) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return marshal(r)
}

// UnmarshalRequest decodes and validates a request.
func UnmarshalRequest(b []byte) (*Request, error) {
	var r Request
	if err := unmarshal(b, &r); err != nil {
		return nil, Errorf(CodeBadRequest, "bad control request: %v", err)
	}
	if err := r.Validate(); err != nil {
		return &r, err // Seq is kept for the error reply
	}
	return &r, nil
}

// MarshalReply encodes a reply.
func MarshalReply(r *Reply) ([]byte, error) {
	if r.Code == OK && r.Msg != "" {
		return nil, errZeroCodeErr
	}
	return marshal(r)
}

// UnmarshalReply decodes a reply.
func UnmarshalReply(b []byte) (*Reply, error) {
	var r Reply
	if err := unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bad control reply: %w", err)
	}
	if r.Code >= numCodes {
		return nil, fmt.Errorf("bad control reply: unknown code %d", r.Code)
	}
	return &r, nil
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessage {
		return nil, ErrTooLong
	}
	return b, nil
}

func unmarshal(b []byte, v any) error {
	if len(b) > MaxMessage {
		return ErrTooLong
	}
	return json.Unmarshal(b, v)
}
