//go:build linux

package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// eBPF programs for the kernel data path of eth devices (internal/netdev,
// kpath.go): a handful of instructions, assembled here (BPFInsn), loaded
// as BPF_PROG_TYPE_SCHED_CLS programs (LoadSchedCLS) and attached to a
// device's ingress or egress through a tcx link (AttachTCX, Linux 6.6). A
// tcx link detaches its program when the last descriptor of the link is
// closed, so nothing stays on the device once its holder exits, even when
// it is killed.

// BPFInsn is one eBPF instruction as the kernel takes it (struct
// bpf_insn, little-endian on the hosts Go's linux ports run on).
type BPFInsn struct {
	Op       uint8
	Dst, Src uint8 // registers 0-10
	Off      int16
	Imm      int32
}

// bpfInsnSize is the size of one encoded instruction.
const bpfInsnSize = 8

// AppendBinary appends the instruction's kernel encoding to b.
func (i BPFInsn) AppendBinary(b []byte) []byte {
	b = append(b, i.Op, i.Dst&0xf|i.Src<<4)
	b = binary.LittleEndian.AppendUint16(b, uint16(i.Off))
	return binary.LittleEndian.AppendUint32(b, uint32(i.Imm))
}

// Instruction builders for the few forms the programs here use.

// BPFMovImm is dst = imm (64-bit move of a sign-extended immediate).
func BPFMovImm(dst uint8, imm int32) BPFInsn {
	return BPFInsn{Op: unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K, Dst: dst, Imm: imm}
}

// BPFCall calls the kernel helper function number fn.
func BPFCall(fn int32) BPFInsn { return BPFInsn{Op: unix.BPF_JMP | unix.BPF_CALL, Imm: fn} }

// BPFExit returns r0.
func BPFExit() BPFInsn { return BPFInsn{Op: unix.BPF_JMP | unix.BPF_EXIT} }

// Helper function numbers (enum bpf_func_id) and tcx verdicts (enum
// tcx_action_base).
const (
	BPFFuncCloneRedirect = 13
	BPFFuncRedirect      = 23

	TCXNext = -1 // run the next program (or the stack)
	TCXPass = 0
)

// bpfLogSize is the verifier log kept for a refused program's error.
const bpfLogSize = 4096

// LoadSchedCLS loads prog as a BPF_PROG_TYPE_SCHED_CLS program named name
// (at most 15 bytes, shown by bpftool) under license and returns its
// descriptor. A refused program's error carries the
// verifier's log.
func LoadSchedCLS(name, license string, prog []BPFInsn) (*os.File, error) {
	if len(name) > 15 {
		return nil, fmt.Errorf("bpf program name %q longer than 15 bytes", name)
	}
	var insns []byte
	for _, in := range prog {
		insns = in.AppendBinary(insns)
	}
	fd, err := bpfProgLoad(unix.BPF_PROG_TYPE_SCHED_CLS, name, license, insns, nil)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL) {
		// Load again for the verifier's reason.
		log := make([]byte, bpfLogSize)
		if _, err2 := bpfProgLoad(unix.BPF_PROG_TYPE_SCHED_CLS, name, license, insns, log); err2 != nil {
			if s := strings.TrimSpace(string(log[:clen(log)])); s != "" {
				return nil, fmt.Errorf("bpf BPF_PROG_LOAD %s: %w: %s", name, err, s)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bpf BPF_PROG_LOAD %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "bpf-prog:"+name), nil
}

// AttachTCX attaches prog to the ingress (or, egress, the egress) of
// interface ifindex after the programs already there, through a tcx link
// whose descriptor it returns: the program stays attached until the last
// copy of the link's descriptor is closed.
func AttachTCX(prog *os.File, ifindex int, egress bool) (*os.File, error) {
	typ := uint32(unix.BPF_TCX_INGRESS)
	dir := "ingress"
	if egress {
		typ, dir = unix.BPF_TCX_EGRESS, "egress"
	}
	fd, err := bpfLinkCreate(int(prog.Fd()), ifindex, typ)
	if err != nil {
		return nil, fmt.Errorf("bpf BPF_LINK_CREATE tcx %s of interface %d: %w", dir, ifindex, err)
	}
	return os.NewFile(uintptr(fd), "bpf-link:tcx-"+dir), nil
}

// clen is the length of the NUL-terminated string in b.
func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}
