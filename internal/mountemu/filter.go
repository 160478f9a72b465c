package mountemu

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrUnsupportedArch is returned by Install on architectures the filter does
// not know the system call numbers of.
var ErrUnsupportedArch = errors.New("mount emulation: only x86_64 is supported")

// seccomp_data offsets.
const (
	offDataNr      = 0
	offDataArch    = 4
	offDataArg1Low = 16 + 8*1 // little-endian low word of args[1]
)

// insn is one BPF instruction whose jumps name labels.
type insn struct {
	f      unix.SockFilter
	label  string // this instruction's label
	jt, jf string // jump targets ("" = next)
}

// assemble resolves labels into relative jump offsets.
func assemble(prog []insn) ([]unix.SockFilter, error) {
	at := map[string]int{}
	for i, in := range prog {
		if in.label != "" {
			at[in.label] = i
		}
	}
	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		f := in.f
		for _, j := range []struct {
			name string
			dst  *uint8
		}{{in.jt, &f.Jt}, {in.jf, &f.Jf}} {
			if j.name == "" {
				continue
			}
			t, ok := at[j.name]
			if !ok || t <= i || t-i-1 > 255 {
				return nil, errors.New("bpf: bad jump to " + j.name)
			}
			*j.dst = uint8(t - i - 1)
		}
		out[i] = f
	}
	return out, nil
}

func ld(off uint32) insn {
	return insn{f: unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}}
}

func jeq(k uint32, jt, jf string) insn {
	return insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k}, jt: jt, jf: jf}
}

func jge(k uint32, jt, jf string) insn {
	return insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: k}, jt: jt, jf: jf}
}

func jgt(k uint32, jt, jf string) insn {
	return insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, K: k}, jt: jt, jf: jf}
}

func ret(k uint32, label string) insn {
	return insn{f: unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k}, label: label}
}

func labeled(in insn, label string) insn { in.label = label; return in }

// sysnums are the system calls the filter looks at, for one architecture.
type sysnums struct {
	arch                  uint32
	mount, umount2, ioctl uint32
	newAPI                []uint32 // return ENOSYS
	denied                []uint32 // return EPERM (see Denied)
}

// program builds the filter: on the other architecture everything is
// allowed; mount and umount2 go to the listener; ioctl goes there only for
// loop requests; the new mount API fails with ENOSYS; the denied calls
// fail with EPERM.
func program(s sysnums) ([]unix.SockFilter, error) {
	// Fast path: below the lowest number the filter looks at (ioctl
	// aside), every call is allowed after four instructions — read, write,
	// open, stat, mmap and the like never walk the lists.
	low := ^uint32(0)
	for _, nr := range append(append([]uint32{s.mount, s.umount2}, s.newAPI...), s.denied...) {
		low = min(low, nr)
	}
	p := []insn{
		ld(offDataArch),
		jeq(s.arch, "", "allow"),
		ld(offDataNr),
		jeq(s.ioctl, "ioctl", ""),
		jge(low, "", "allow"),
		jeq(s.mount, "notify", ""),
		jeq(s.umount2, "notify", ""),
	}
	for _, nr := range s.newAPI {
		p = append(p, jeq(nr, "enosys", ""))
	}
	for _, nr := range s.denied {
		p = append(p, jeq(nr, "eperm", ""))
	}
	p = append(p,
		ret(unix.SECCOMP_RET_ALLOW, "allow"),
		labeled(ld(offDataArg1Low), "ioctl"),
		jge(LoopSetFD, "", "allow2"),
		jgt(LoopConfigure, "", "notify"),
		jge(LoopCtlAdd, "", "allow2"),
		jgt(LoopCtlGetFree, "allow2", "notify"),
		ret(unix.SECCOMP_RET_ALLOW, "allow2"),
		ret(unix.SECCOMP_RET_USER_NOTIF, "notify"),
		ret(unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS), "enosys"),
		ret(unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM), "eperm"),
	)
	return assemble(p)
}

// Denied names the system calls the guest's filter refuses with EPERM (the
// security section of docs/linux.md compares the list with the default
// profiles of container runtimes): the kernel keyring, kexec, modules,
// open_by_handle_at, perf, bpf, userfaultfd, accounting, swap, quotas, the
// kernel log, port I/O and the clock. None has a UML guest equivalent that
// reaches the host. Nil where the filter is not supported.
func Denied() []uint32 {
	if hostSysnums == nil {
		return nil
	}
	return append([]uint32(nil), hostSysnums.denied...)
}
