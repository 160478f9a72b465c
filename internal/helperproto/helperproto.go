// Package helperproto is the argv and reply contract of the uml_net helper,
// protocol version 4, shared by the helper (cmd/uml_net, internal/umlnet)
// and the kernels that exec it: argv building and parsing, the
// length-prefixed output replies, the tuntap reply datagram (16-byte
// interface name + NUL-terminated text, the fd travelling as SCM_RIGHTS
// beside it), the ethertap status byte and control request, and the
// validation of every argument the helper accepts.
//
// Pure: no I/O, no syscalls; builds on every GOOS. "Host order" integers of
// the C helper are encoded with binary.NativeEndian.
//
// Spec: shared/spec/net.md §4.
package helperproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Version is the newest protocol version the helper speaks.
const Version = 4

// Transports (argv[2]) the helper knows.
const (
	TransEthertap = "ethertap"
	TransSlip     = "slip"
	TransTuntap   = "tuntap"
	TransAdd      = "add"
	TransDel      = "del"
)

// IfNameSize is the size of the interface-name field of the tuntap reply
// (IFNAMSIZ).
const IfNameSize = 16

// LenPrefixSize is the size of the host-order length before a text reply.
const LenPrefixSize = 4

// Fixed texts of the real helper.
const (
	BadArgList = "uml_net : bad argument list - if you're running uml_net by\n" +
		"hand, don't bother.  uml_net is run automatically by UML when\nnecessary.\n"
	TuntapTooFew       = "uml_net : too few arguments to tuntap_v4\n"
	TuntapUpTooFew     = "Too few arguments to tuntap_up\n"
	ChangeAddrTooFew   = "uml_net : too few arguments to tuntap change_addr\n"
	EthertapTooFew     = "uml_net : Too few arguments to ethertap_v4\n"
	SlipTooFew         = "uml_net : too few arguments to slip_v4\n"
	NotAlphanumeric    = "Device doesn't contain only alphanumeric characters\n"
	IPForwardCmd       = "echo 1 > /proc/sys/net/ipv4/ip_forward"
	HostRouteMask      = "255.255.255.255"
	EthertapStatusOK   = 1
	EthertapStatusFail = 0
)

// Stream says where a parse error's text goes and how the helper exits.
type Stream int

const (
	// Stderr: plain text on stderr.
	Stderr Stream = iota
	// Stdout: plain text on stdout.
	Stdout
	// LengthPrefixed: text as a length-prefixed reply on stdout.
	LengthPrefixed
	// TuntapDatagram: text as a failed tuntap reply datagram (no name, no fd).
	TuntapDatagram
	// EthertapStatus: status byte 0 then a length-prefixed reply.
	EthertapStatus
)

// ArgvError is a refusal to run, with the exact text the real helper
// prints, where it prints it, and the exit status.
type ArgvError struct {
	Stream Stream
	Text   string
	Code   int
}

func (e *ArgvError) Error() string { return strings.TrimSuffix(e.Text, "\n") }

// Request is a parsed uml_net command line.
type Request struct {
	Version   int
	Transport string
	// Op is the tuntap or slip operation (up, add, del, down); for the bare
	// add/del transports it repeats the transport.
	Op string
	// Gate is the gateway address of tuntap up / slip up / ethertap.
	Gate netip.Addr
	// Dev, Addr, Mask are the address-hook arguments (add/del), Dev also
	// the ethertap device and the slip down interface.
	Dev  string
	Addr netip.Addr
	Mask netip.Addr
	// DataFD is the ethertap data descriptor number.
	DataFD int
}

// TuntapUpArgv is the command line a kernel runs to create a tap.
func TuntapUpArgv(gate string) []string {
	return []string{"uml_net", "4", TransTuntap, "up", gate}
}

// ChangeAddrArgv is the command line of an address hook: op is "add" or
// "del".
func ChangeAddrArgv(op, dev, addr, mask string) []string {
	return []string{"uml_net", "4", op, dev, addr, mask}
}

// strtoul mimics C strtoul(s, &end, 0): leading spaces, an optional sign,
// 0x/0 prefixes. ok is false when no digit was consumed.
func strtoul(s string) (v uint64, ok bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hexDigit(s[2]) >= 0:
		base, s = 16, s[2:]
	case len(s) > 0 && s[0] == '0':
		base = 8
	}
	for i := 0; i < len(s); i++ {
		d := hexDigit(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		ok = true
		v = v*base + uint64(d)
	}
	if neg {
		v = -v
	}
	return v, ok
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ParseArgv parses os.Args[1:] of uml_net. Only protocol version 4 has
// handlers; every argument is validated (see CheckIfName, ParseAddr,
// ParseMask). The returned error is an *ArgvError.
func ParseArgv(args []string) (Request, error) {
	if len(args) < 2 {
		return Request{}, &ArgvError{Stderr, BadArgList, 1}
	}
	var r Request
	rest := args[1:]
	if v, ok := strtoul(args[0]); ok {
		r.Version = int(int32(v))
		if v > Version {
			return r, &ArgvError{Stderr, fmt.Sprintf("Version mismatch - requested version %d, uml_net supports up to version %d\n", r.Version, Version), 1}
		}
		r.Transport, rest = args[1], args[2:]
	} else {
		r.Transport = args[0]
	}
	switch r.Transport {
	case TransEthertap, TransSlip, TransTuntap, TransAdd, TransDel:
	default:
		return r, &ArgvError{Stdout, fmt.Sprintf("Unknown transport : '%s'\n", r.Transport), 1}
	}
	if r.Version != Version {
		return r, &ArgvError{Stdout, fmt.Sprintf("No version #%d handler for '%s'\n", r.Version, r.Transport), 1}
	}
	switch r.Transport {
	case TransTuntap:
		return parseTuntap(r, rest)
	case TransAdd, TransDel:
		r.Op = r.Transport
		return parseChangeAddr(r, rest, &ArgvError{LengthPrefixed, "uml_net : too few arguments to " + r.Op + "\n", 1})
	case TransEthertap:
		return parseEthertap(r, rest)
	default:
		return parseSlip(r, rest)
	}
}

func parseTuntap(r Request, rest []string) (Request, error) {
	if len(rest) < 1 {
		return r, &ArgvError{LengthPrefixed, TuntapTooFew, 1}
	}
	r.Op = rest[0]
	switch r.Op {
	case "up":
		if len(rest) < 2 {
			return r, &ArgvError{TuntapDatagram, TuntapUpTooFew, 0}
		}
		gate, err := ParseAddr(rest[1])
		if err != nil {
			return r, &ArgvError{TuntapDatagram, fmt.Sprintf("Invalid gateway address '%s'\n", rest[1]), 0}
		}
		r.Gate = gate
		return r, nil
	case "add", "del":
		return parseChangeAddr(r, rest[1:], &ArgvError{LengthPrefixed, ChangeAddrTooFew, 0})
	}
	return r, &ArgvError{Stderr, fmt.Sprintf("Bad tuntap op : '%s'\n", r.Op), 1}
}

func parseChangeAddr(r Request, rest []string, tooFew *ArgvError) (Request, error) {
	if len(rest) < 3 {
		return r, tooFew
	}
	if err := CheckIfName(rest[0]); err != nil {
		return r, &ArgvError{LengthPrefixed, NotAlphanumeric, 0}
	}
	var err error
	if r.Addr, err = ParseAddr(rest[1]); err != nil {
		return r, &ArgvError{LengthPrefixed, fmt.Sprintf("Invalid address '%s'\n", rest[1]), 1}
	}
	if r.Mask, err = ParseMask(rest[2]); err != nil {
		return r, &ArgvError{LengthPrefixed, fmt.Sprintf("Invalid netmask '%s'\n", rest[2]), 1}
	}
	r.Dev = rest[0]
	return r, nil
}

func parseEthertap(r Request, rest []string) (Request, error) {
	if len(rest) < 2 {
		return r, &ArgvError{EthertapStatus, EthertapTooFew, 1}
	}
	r.Dev = rest[0]
	if _, err := EthertapUnit(r.Dev); err != nil {
		return r, &ArgvError{EthertapStatus, fmt.Sprintf("failed to get unit number from '/dev/%s'\n", r.Dev), 1}
	}
	fd, ok := strtoul(rest[1])
	if !ok || fd > 1<<20 {
		return r, &ArgvError{EthertapStatus, fmt.Sprintf("Invalid data descriptor '%s'\n", rest[1]), 1}
	}
	r.DataFD = int(fd)
	if len(rest) > 2 {
		gate, err := ParseAddr(rest[2])
		if err != nil {
			return r, &ArgvError{EthertapStatus, fmt.Sprintf("Invalid gateway address '%s'\n", rest[2]), 1}
		}
		r.Gate = gate
	}
	return r, nil
}

func parseSlip(r Request, rest []string) (Request, error) {
	if len(rest) < 2 {
		return r, &ArgvError{LengthPrefixed, SlipTooFew, 1}
	}
	r.Op = rest[0]
	switch r.Op {
	case "up":
		gate, err := ParseAddr(rest[1])
		if err != nil {
			return r, &ArgvError{LengthPrefixed, fmt.Sprintf("Invalid gateway address '%s'\n", rest[1]), 1}
		}
		r.Gate = gate
	case "down":
		if err := CheckIfName(rest[1]); err != nil {
			return r, &ArgvError{LengthPrefixed, NotAlphanumeric, 1}
		}
		r.Dev = rest[1]
	default:
		return r, &ArgvError{Stdout, fmt.Sprintf("slip - Unknown op '%s'\n", r.Op), 1}
	}
	return r, nil
}

// Validation errors.
var (
	ErrBadIfName = errors.New("interface name must be 1-15 alphanumeric characters")
	ErrBadAddr   = errors.New("not a dotted-quad IPv4 address")
	ErrBadMask   = errors.New("not a contiguous dotted-quad IPv4 netmask")
	ErrBadUnit   = errors.New("ethertap device name is not tap<N>")
)

// CheckIfName accepts 1..15 ASCII letters and digits, the real helper's
// rule (made strict about length).
func CheckIfName(s string) error {
	if s == "" || len(s) >= IfNameSize {
		return ErrBadIfName
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return ErrBadIfName
		}
	}
	return nil
}

// ParseAddr accepts a canonical dotted-quad unicast IPv4 address (no
// leading zeros, no hostnames, not 0.0.0.0, 255.255.255.255, multicast or
// loopback).
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.String() != s {
		return netip.Addr{}, ErrBadAddr
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, ErrBadAddr
	}
	return a, nil
}

// ParseMask accepts a dotted-quad netmask with contiguous one bits.
func ParseMask(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.String() != s {
		return netip.Addr{}, ErrBadMask
	}
	m := binary.BigEndian.Uint32(a.AsSlice())
	inv := ^m // contiguous ones from the top <=> inv+1 is a power of two
	if inv&(inv+1) != 0 {
		return netip.Addr{}, ErrBadMask
	}
	return a, nil
}

// MaskBits returns the prefix length of a mask accepted by ParseMask.
func MaskBits(mask netip.Addr) int {
	m := binary.BigEndian.Uint32(mask.AsSlice())
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	return n
}

// EthertapUnit returns N of an ethertap device name "tapN".
func EthertapUnit(dev string) (int, error) {
	num, ok := strings.CutPrefix(dev, "tap")
	if !ok || num == "" || len(num) > 4 {
		return 0, ErrBadUnit
	}
	n := 0
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, ErrBadUnit
		}
		n = n*10 + int(num[i]-'0')
	}
	return n, nil
}

// CommandLine is the output-log line of a command: "*" then " arg" for each
// argument, then a newline (e.g. "* route add -host 10.0.1.2 dev tap2\n").
func CommandLine(argv ...string) string {
	var b strings.Builder
	b.WriteByte('*')
	for _, a := range argv {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	b.WriteByte('\n')
	return b.String()
}

// FailedStatus is the line added when a command that must succeed failed.
func FailedStatus(argv0 string) string {
	return fmt.Sprintf("'%s' didn't exit with status 0\n", argv0)
}

// AppendLengthPrefixed appends the length-prefixed form of text: a
// host-order int32 len(text)+1, text, NUL; an empty text is just a zero
// length.
func AppendLengthPrefixed(b []byte, text string) []byte {
	if text == "" {
		return binary.NativeEndian.AppendUint32(b, 0)
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(len(text)+1))
	b = append(b, text...)
	return append(b, 0)
}

// Decoding errors.
var (
	ErrShortReply = errors.New("short helper reply")
	ErrBadLength  = errors.New("helper reply length out of range")
)

// MaxText bounds the text of a reply (the kernel reads into one page).
const MaxText = 1 << 16

// ParseLengthPrefixed decodes one length-prefixed reply from the front of
// b, returning its text (without the trailing NUL and anything after an
// embedded NUL) and the number of bytes consumed.
func ParseLengthPrefixed(b []byte) (text string, n int, err error) {
	if len(b) < LenPrefixSize {
		return "", 0, ErrShortReply
	}
	l := binary.NativeEndian.Uint32(b)
	if l > MaxText {
		return "", 0, ErrBadLength
	}
	if len(b)-LenPrefixSize < int(l) {
		return "", 0, ErrShortReply
	}
	body := b[LenPrefixSize : LenPrefixSize+int(l)]
	if i := bytes.IndexByte(body, 0); i >= 0 {
		body = body[:i]
	}
	return string(body), LenPrefixSize + int(l), nil
}

// TuntapReply is the datagram answering "tuntap up". A successful reply
// has Name set (and the tap fd attached); a failed one has no name and
// the whole datagram is the text.
type TuntapReply struct {
	Name string
	Text string
}

// MarshalBinary encodes r: [name NUL-padded to 16 bytes] text NUL.
func (r TuntapReply) MarshalBinary() ([]byte, error) {
	if len(r.Name) >= IfNameSize {
		return nil, fmt.Errorf("interface name %q: %w", r.Name, ErrBadIfName)
	}
	var b []byte
	if r.Name != "" {
		b = make([]byte, IfNameSize, IfNameSize+len(r.Text)+1)
		copy(b, r.Name)
	}
	b = append(b, r.Text...)
	return append(b, 0), nil
}

// UnmarshalBinary decodes a reply the way the kernel's recvmsg scatters it:
// the first 16 bytes are the name, the rest the text. Use it only for
// replies that carried an fd; for fd-less (failed) replies the whole
// datagram is text (see FailedTuntapText).
func (r *TuntapReply) UnmarshalBinary(b []byte) error {
	if len(b) < IfNameSize {
		return ErrShortReply
	}
	r.Name = cString(b[:IfNameSize])
	r.Text = cString(b[IfNameSize:])
	return nil
}

// FailedTuntapText returns the text of an fd-less tuntap reply.
func FailedTuntapText(b []byte) string { return cString(b) }

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// EthertapReqSize is the size of an ethertap control request.
const EthertapReqSize = 12

// Ethertap control operations.
const (
	EthertapAdd = 0
	EthertapDel = 1
)

// EthertapRequest is {u32 what; u8 addr[4]; u8 netmask[4]}, host order.
type EthertapRequest struct {
	What uint32
	Addr [4]byte
	Mask [4]byte
}

// MarshalBinary encodes the 12-byte request.
func (r EthertapRequest) MarshalBinary() ([]byte, error) {
	b := binary.NativeEndian.AppendUint32(make([]byte, 0, EthertapReqSize), r.What)
	b = append(b, r.Addr[:]...)
	return append(b, r.Mask[:]...), nil
}

// UnmarshalBinary decodes the 12-byte request.
func (r *EthertapRequest) UnmarshalBinary(b []byte) error {
	if len(b) < EthertapReqSize {
		return ErrShortReply
	}
	r.What = binary.NativeEndian.Uint32(b)
	copy(r.Addr[:], b[4:8])
	copy(r.Mask[:], b[8:12])
	return nil
}
