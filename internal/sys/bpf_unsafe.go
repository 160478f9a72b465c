//go:build linux

package sys

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpfProgLoadAttr is the head of union bpf_attr for BPF_PROG_LOAD, up to
// expected_attach_type; the kernel zero-fills the rest.
type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// bpfLinkCreateAttr is union bpf_attr for BPF_LINK_CREATE of a tcx link:
// relative_fd/id and expected_revision left 0 (append, any revision).
type bpfLinkCreateAttr struct {
	progFD           uint32
	targetIfindex    uint32
	attachType       uint32
	flags            uint32
	relative         uint32
	_                uint32
	expectedRevision uint64
}

// bpf makes the bpf(2) call cmd on attr, retrying EINTR (and, a few
// times, EAGAIN: a verifier run cut short by a signal); it returns the new
// descriptor, which the kernel makes close-on-exec.
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for try := 0; ; try++ {
		r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		switch {
		case e == 0:
			return int(r), nil
		case e == unix.EINTR, e == unix.EAGAIN && try < 5:
			continue
		}
		return -1, e
	}
}

func bpfProgLoad(typ uint32, name, license string, insns, log []byte) (int, error) {
	lic := append([]byte(license), 0)
	attr := bpfProgLoadAttr{
		progType: typ,
		insnCnt:  uint32(len(insns) / bpfInsnSize),
		insns:    uint64(uintptr(bytesPtr(insns))),
		license:  uint64(uintptr(bytesPtr(lic))),
	}
	copy(attr.progName[:], name)
	if len(log) > 0 {
		attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), uint64(uintptr(bytesPtr(log)))
	}
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(lic)
	runtime.KeepAlive(log)
	return fd, err
}

func bpfLinkCreate(prog, ifindex int, attachType uint32) (int, error) {
	attr := bpfLinkCreateAttr{progFD: uint32(prog), targetIfindex: uint32(ifindex), attachType: attachType}
	return bpf(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}
