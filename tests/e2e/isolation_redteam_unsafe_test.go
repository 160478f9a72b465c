package e2e

import (
	"runtime"
	"syscall"
	"unsafe"
)

// seccompFilter returns the first seccomp filter of pid as classic BPF.
func seccompFilter(pid int) ([]syscall.SockFilter, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.PtraceAttach(pid); err != nil {
		return nil, err
	}
	defer syscall.PtraceDetach(pid)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
		return nil, err
	}
	const ptraceSeccompGetFilter = 0x420c
	n, _, e := syscall.Syscall6(syscall.SYS_PTRACE, ptraceSeccompGetFilter, uintptr(pid), 0, 0, 0, 0)
	if e != 0 {
		return nil, e
	}
	prog := make([]syscall.SockFilter, n)
	if _, _, e := syscall.Syscall6(syscall.SYS_PTRACE, ptraceSeccompGetFilter, uintptr(pid), 0, uintptr(unsafe.Pointer(&prog[0])), 0, 0); e != 0 {
		return nil, e
	}
	return prog, nil
}
