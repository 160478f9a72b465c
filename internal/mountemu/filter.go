package mountemu

import (
	"errors"
	"fmt"
	"sort"

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
	jaTo   string // BPF_JA target (K is the offset)
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
		if in.jaTo != "" {
			t, ok := at[in.jaTo]
			if !ok || t <= i {
				return nil, errors.New("bpf: bad jump to " + in.jaTo)
			}
			f.K = uint32(t - i - 1)
		}
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
	// sysinfo goes to the listener when trapSysinfo is set (0: never).
	sysinfo     uint32
	trapSysinfo bool
	newAPI      []uint32 // return ENOSYS
	denied      []uint32 // return EPERM (see Denied)
	// x32 is the bit that marks the x32 ABI's calls (on x86_64): they
	// fail with ENOSYS. 0 when the architecture has none.
	x32 uint32
	// compat is the 32-bit ABI the same processes may use (i386 on
	// x86_64): its denied and new-mount-API calls get the same answers;
	// mount and the loop ioctls run natively there (the host kernel
	// refuses what the user namespace may not do). Calls of any other
	// architecture fail with ENOSYS; with no compat they are allowed.
	compat *sysnums
}

// program builds the filter: on the other architecture everything is
// allowed; mount and umount2 go to the listener, and sysinfo when asked
// for; ioctl goes there only for loop requests and the block-device
// requests of blockRequests; the new mount API fails with ENOSYS; the
// denied calls fail with EPERM.
func program(s sysnums) ([]unix.SockFilter, error) {
	// Every listed call and its action, searched as a binary tree of
	// jge tests (about six steps for every call, listed or not; a linear
	// list would cost every openat, futex and exit_group forty).
	var cases []filterCase
	cases = append(cases, filterCase{s.ioctl, "ioctl"}, filterCase{s.mount, "notify"}, filterCase{s.umount2, "notify"})
	if s.trapSysinfo && s.sysinfo != 0 {
		cases = append(cases, filterCase{s.sysinfo, "notify"})
	}
	for _, nr := range s.newAPI {
		cases = append(cases, filterCase{nr, "enosys"})
	}
	for _, nr := range s.denied {
		cases = append(cases, filterCase{nr, "eperm"})
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].nr < cases[j].nr })
	other := "allow"
	if s.compat != nil {
		other = "enosys"
	}
	p := []insn{ld(offDataArch)}
	if s.compat != nil {
		p = append(p, jeq(s.compat.arch, "compat", ""))
	}
	p = append(p, jeq(s.arch, "", other), ld(offDataNr))
	if s.x32 != 0 {
		p = append(p, jge(s.x32, "enosys", ""))
	}
	seq := 0
	p = appendTree(p, cases, &seq, "allow")
	if c := s.compat; c != nil {
		var cc []filterCase
		for _, nr := range c.newAPI {
			cc = append(cc, filterCase{nr, "enosys"})
		}
		for _, nr := range c.denied {
			cc = append(cc, filterCase{nr, "eperm"})
		}
		sort.Slice(cc, func(i, j int) bool { return cc[i].nr < cc[j].nr })
		at := len(p)
		p = append(p, ld(offDataNr))
		p[at].label = "compat"
		p = appendTree(p, cc, &seq, "allow")
	}
	var blk []filterCase
	for _, r := range blockRequests {
		blk = append(blk, filterCase{r, "notify"})
	}
	sort.Slice(blk, func(i, j int) bool { return blk[i].nr < blk[j].nr })
	p = append(p,
		ret(unix.SECCOMP_RET_ALLOW, "allow"),
		labeled(ld(offDataArg1Low), "ioctl"),
		jge(LoopSetFD, "", "blk"),
		jgt(LoopConfigure, "", "notify"),
		jge(LoopCtlAdd, "", "blk"),
		jgt(LoopCtlGetFree, "blk", "notify"),
	)
	at := len(p)
	p = appendTree(p, blk, &seq, "allow2")
	p[at].label = "blk"
	p = append(p,
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

// filterCase is one listed system call and the label of its action.
type filterCase struct {
	nr     uint32
	action string
}

// appendTree emits the search over sorted cases: a short run is a chain of
// jeq; a longer one splits at its middle with jge, the upper half under a
// fresh label after the lower half (jumps only go forward). A value found
// in no case reaches the label other.
func appendTree(p []insn, cases []filterCase, seq *int, other string) []insn {
	if len(cases) <= 3 {
		for _, c := range cases {
			p = append(p, jeq(c.nr, c.action, ""))
		}
		return append(p, insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, jaTo: other})
	}
	mid := len(cases) / 2
	*seq++
	upper := fmt.Sprintf("t%d", *seq)
	p = append(p, jge(cases[mid].nr, upper, ""))
	p = appendTree(p, cases[:mid], seq, other)
	at := len(p)
	p = appendTree(p, cases[mid:], seq, other)
	p[at].label = upper
	return p
}
