//go:build linux

package sys

import (
	"bytes"
	"testing"
)

// TestBPFInsnEncoding checks the instruction encoding against the bytes
// the kernel's struct bpf_insn has for the same instructions (as
// llvm-objdump prints them).
func TestBPFInsnEncoding(t *testing.T) {
	for _, c := range []struct {
		in   BPFInsn
		want []byte
	}{
		{BPFMovImm(1, 7), []byte{0xb7, 0x01, 0, 0, 0x07, 0, 0, 0}},                               // r1 = 7
		{BPFMovImm(2, 1), []byte{0xb7, 0x02, 0, 0, 0x01, 0, 0, 0}},                               // r2 = 1
		{BPFMovImm(0, -1), []byte{0xb7, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff}},                     // r0 = -1
		{BPFCall(BPFFuncRedirect), []byte{0x85, 0x00, 0, 0, 0x17, 0, 0, 0}},                      // call bpf_redirect
		{BPFCall(BPFFuncCloneRedirect), []byte{0x85, 0x00, 0, 0, 0x0d, 0, 0, 0}},                 // call bpf_clone_redirect
		{BPFExit(), []byte{0x95, 0, 0, 0, 0, 0, 0, 0}},                                           // exit
		{BPFInsn{Op: 0xbf, Dst: 6, Src: 1, Off: -2}, []byte{0xbf, 0x16, 0xfe, 0xff, 0, 0, 0, 0}}, // r6 = r1, off -2
	} {
		if got := c.in.AppendBinary(nil); !bytes.Equal(got, c.want) {
			t.Errorf("%+v encodes as % x; want % x", c.in, got, c.want)
		}
	}
}

func TestLoadSchedCLSName(t *testing.T) {
	if _, err := LoadSchedCLS("a-name-longer-than-15", "MIT", []BPFInsn{BPFMovImm(0, 0), BPFExit()}); err == nil {
		t.Error("a 21-byte program name was taken")
	}
}
