// Package procview renders the machine's own views of /proc files that the
// host kernel would otherwise show with the host's figures: the guest
// command line (/proc/cmdline), memory as mem= and the machine's memory
// cgroup give it (/proc/meminfo, /proc/swaps), the time since the machine
// booted (/proc/uptime), and, where the machine may use fewer CPUs than the
// host has, the CPUs it may use (/proc/cpuinfo, /proc/stat,
// /sys/devices/system/cpu/online). It is what LXCFS does for containers,
// done inside linux.
//
// Each renderer takes the host file's bytes and the machine's figures and
// returns the file the guest reads. Lines the machine's figures do not
// change keep the host's text byte for byte, so every parser of the host's
// format (procps, busybox, psutil) reads them. A host text the renderer
// cannot make sense of is an error; the caller then serves the host's file.
//
// Pure: no I/O, no system calls. Every parser has a fuzz test. The FUSE
// export is internal/procfuse; docs/linux.md ("The machine's /proc views")
// says what is virtualised and what is not.
package procview

import (
	"errors"
	"fmt"
)

// MaxInput bounds a host text a renderer accepts (a /proc/cpuinfo of a
// few thousand CPUs fits).
const MaxInput = 8 << 20

// Errors of the parsers.
var (
	ErrTooLong   = errors.New("procview: input too long")
	ErrMalformed = errors.New("procview: malformed input")
	ErrMissing   = errors.New("procview: a required line is missing")
)

// Cmdline is /proc/cmdline for the guest command line line: UML's kernel
// shows the words it kept (umid= and the other host options it consumed
// left out, root= and console= appended) and a newline.
func Cmdline(line string) []byte { return []byte(line + "\n") }

// BootID is /proc/sys/kernel/random/boot_id for the 16 random bytes r: a
// version 4 UUID in the kernel's lower-case form and a newline.
func BootID(r [16]byte) []byte {
	r[6] = r[6]&0x0f | 0x40 // version 4
	r[8] = r[8]&0x3f | 0x80 // RFC 4122 variant
	return []byte(fmt.Sprintf("%x-%x-%x-%x-%x\n", r[0:4], r[4:6], r[6:8], r[8:10], r[10:16]))
}
