package mountemu

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Loop ioctl requests (linux/loop.h).
const (
	LoopSetFD        = 0x4C00
	LoopClrFD        = 0x4C01
	LoopSetStatus    = 0x4C02
	LoopGetStatus    = 0x4C03
	LoopSetStatus64  = 0x4C04
	LoopGetStatus64  = 0x4C05
	LoopChangeFD     = 0x4C06
	LoopSetCapacity  = 0x4C07
	LoopSetDirectIO  = 0x4C08
	LoopSetBlockSize = 0x4C09
	LoopConfigure    = 0x4C0A
	LoopCtlAdd       = 0x4C80
	LoopCtlRemove    = 0x4C81
	LoopCtlGetFree   = 0x4C82
)

// IsLoopRequest reports whether the low 32 bits of an ioctl request are a
// loop request (what the seccomp filter traps).
func IsLoopRequest(req uint64) bool {
	r := uint32(req)
	return (r >= LoopSetFD && r <= LoopConfigure) || (r >= LoopCtlAdd && r <= LoopCtlGetFree)
}

// Loop flags (lo_flags).
const (
	LoFlagsReadOnly  = 1
	LoFlagsAutoclear = 4
	LoFlagsPartscan  = 8
	LoFlagsDirectIO  = 16
)

// Sizes of struct loop_info64 and struct loop_config (host byte order).
const (
	LoopInfo64Size = 232
	LoopConfigSize = 304
	loNameSize     = 64
	loKeySize      = 32

	offDevice        = 0
	offInode         = 8
	offRdevice       = 16
	offOffset        = 24
	offSizelimit     = 32
	offNumber        = 40
	offEncryptType   = 44
	offEncryptKeySz  = 48
	offFlags         = 52
	offFileName      = 56
	offCryptName     = 120
	offEncryptKey    = 184
	offInit          = 216
	offConfigFD      = 0
	offConfigBlkSize = 4
	offConfigInfo    = 8
)

// ErrShortLoopInfo is returned when a buffer is smaller than the structure.
var ErrShortLoopInfo = errors.New("loop info: short buffer")

// LoopInfo is struct loop_info64.
type LoopInfo struct {
	Device, Inode, Rdevice uint64
	Offset, Sizelimit      uint64
	Number                 uint32
	EncryptType            uint32
	EncryptKeySize         uint32
	Flags                  uint32
	FileName               [loNameSize]byte
	CryptName              [loNameSize]byte
	EncryptKey             [loKeySize]byte
	Init                   [2]uint64
}

// Name returns FileName up to its first NUL.
func (l *LoopInfo) Name() string {
	n, _, _ := bytes.Cut(l.FileName[:], []byte{0})
	return string(n)
}

// SetName stores s in FileName, truncated and NUL-terminated as the kernel does.
func (l *LoopInfo) SetName(s string) {
	l.FileName = [loNameSize]byte{}
	copy(l.FileName[:loNameSize-1], s)
}

var ne = binary.NativeEndian

// UnmarshalBinary decodes struct loop_info64 in host byte order.
func (l *LoopInfo) UnmarshalBinary(b []byte) error {
	if len(b) < LoopInfo64Size {
		return ErrShortLoopInfo
	}
	l.Device = ne.Uint64(b[offDevice:])
	l.Inode = ne.Uint64(b[offInode:])
	l.Rdevice = ne.Uint64(b[offRdevice:])
	l.Offset = ne.Uint64(b[offOffset:])
	l.Sizelimit = ne.Uint64(b[offSizelimit:])
	l.Number = ne.Uint32(b[offNumber:])
	l.EncryptType = ne.Uint32(b[offEncryptType:])
	l.EncryptKeySize = ne.Uint32(b[offEncryptKeySz:])
	l.Flags = ne.Uint32(b[offFlags:])
	copy(l.FileName[:], b[offFileName:offFileName+loNameSize])
	copy(l.CryptName[:], b[offCryptName:offCryptName+loNameSize])
	copy(l.EncryptKey[:], b[offEncryptKey:offEncryptKey+loKeySize])
	l.Init[0] = ne.Uint64(b[offInit:])
	l.Init[1] = ne.Uint64(b[offInit+8:])
	return nil
}

// AppendBinary appends the encoded struct loop_info64 to b.
func (l *LoopInfo) AppendBinary(b []byte) ([]byte, error) {
	out := make([]byte, LoopInfo64Size)
	ne.PutUint64(out[offDevice:], l.Device)
	ne.PutUint64(out[offInode:], l.Inode)
	ne.PutUint64(out[offRdevice:], l.Rdevice)
	ne.PutUint64(out[offOffset:], l.Offset)
	ne.PutUint64(out[offSizelimit:], l.Sizelimit)
	ne.PutUint32(out[offNumber:], l.Number)
	ne.PutUint32(out[offEncryptType:], l.EncryptType)
	ne.PutUint32(out[offEncryptKeySz:], l.EncryptKeySize)
	ne.PutUint32(out[offFlags:], l.Flags)
	copy(out[offFileName:], l.FileName[:])
	copy(out[offCryptName:], l.CryptName[:])
	copy(out[offEncryptKey:], l.EncryptKey[:])
	ne.PutUint64(out[offInit:], l.Init[0])
	ne.PutUint64(out[offInit+8:], l.Init[1])
	return append(b, out...), nil
}

// MarshalBinary encodes struct loop_info64.
func (l *LoopInfo) MarshalBinary() ([]byte, error) { return l.AppendBinary(nil) }

// LoopConfig is struct loop_config (LOOP_CONFIGURE).
type LoopConfig struct {
	FD        uint32
	BlockSize uint32
	Info      LoopInfo
}

// UnmarshalBinary decodes struct loop_config in host byte order.
func (c *LoopConfig) UnmarshalBinary(b []byte) error {
	if len(b) < LoopConfigSize {
		return ErrShortLoopInfo
	}
	c.FD = ne.Uint32(b[offConfigFD:])
	c.BlockSize = ne.Uint32(b[offConfigBlkSize:])
	return c.Info.UnmarshalBinary(b[offConfigInfo:])
}

// MarshalBinary encodes struct loop_config (reserved words zero).
func (c *LoopConfig) MarshalBinary() ([]byte, error) {
	out := make([]byte, offConfigInfo, LoopConfigSize)
	ne.PutUint32(out[offConfigFD:], c.FD)
	ne.PutUint32(out[offConfigBlkSize:], c.BlockSize)
	out, _ = c.Info.AppendBinary(out)
	return append(out, make([]byte, LoopConfigSize-len(out))...), nil
}
