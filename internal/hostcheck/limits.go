package hostcheck

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Host limits that one more machine must fit in. Each check reads what
// the kernel exposes and, when the machine would not fit, names the limit
// and the setting that raises it: the machine is refused before it boots
// rather than failing half-way (a console line's pty, a guest's fork).

// Ptys reports whether need more pseudo-terminals can be had from a devpts
// instance other than the host's own, as linux's are: the kernel keeps
// kernel.pty.reserve of kernel.pty.max for the host's /dev/pts.
func Ptys(need int) *Problem { return ptys("/proc", need) }

func ptys(proc string, need int) *Problem {
	max, ok1 := readInt(proc + "/sys/kernel/pty/max")
	reserve, ok2 := readInt(proc + "/sys/kernel/pty/reserve")
	nr, ok3 := readInt(proc + "/sys/kernel/pty/nr")
	if !ok1 || !ok2 || !ok3 || nr+need <= max-reserve {
		return nil
	}
	want := roundUp(nr+need+reserve, 1024)
	if want < 2*max {
		want = 2 * max
	}
	return &Problem{
		What: fmt.Sprintf("not enough host pseudo-terminals: this machine needs %d, %d of kernel.pty.max = %d are in use and %d are reserved for the host's own terminals",
			need, nr, max, reserve),
		Fix: fmt.Sprintf("run: sysctl -w kernel.pty.max=%d (or configure unused lines as none: con=none ssl=none)", want),
	}
}

// taskReserve is what one machine needs at least in free host tasks: the
// host side's processes and threads (P, K, fuse2fs, helpers) and a guest's
// first processes.
const taskReserve = 64

// Tasks reports whether the host can start taskReserve more tasks
// (processes and threads) under kernel.pid_max and kernel.threads-max.
func Tasks() *Problem { return tasks("/proc") }

func tasks(proc string) *Problem {
	b, err := os.ReadFile(proc + "/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return nil
	}
	_, total, ok := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(total)
	if !ok || err != nil {
		return nil
	}
	for _, lim := range []string{"pid_max", "threads-max"} {
		max, ok := readInt(proc + "/sys/kernel/" + lim)
		if ok && n+taskReserve > max {
			return &Problem{
				What: fmt.Sprintf("the host is out of tasks: %d of kernel.%s = %d are in use, a machine needs about %d more", n, lim, max, taskReserve),
				Fix:  fmt.Sprintf("run: sysctl -w kernel.%s=%d", lim, roundUp(2*max, 1024)),
			}
		}
	}
	return nil
}

func readInt(path string) (int, bool) {
	s, ok := readTrim(path)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
