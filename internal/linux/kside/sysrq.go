package kside

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mountemu"
)

// Magic SysRq and stack dumps for the mconsole's "sysrq" and "stack"
// commands. There is no kernel underneath the guest, so each letter does
// what it means for the guest's processes and file systems, from user space
// (spec/mconsole.md §4; docs/linux.md lists what each letter does here).

// sysrqHelp is the 6.1 kernel's help line, byte for byte (trailing space
// included); it answers an empty, "h" or unknown letter.
const sysrqHelp = "sysrq: HELP : loglevel(0-9) reboot(b) crash(c) terminate-all-tasks(e) " +
	"memory-full-oom-kill(f) kill-all-tasks(i) thaw-filesystems(j) show-memory-usage(m) " +
	"nice-all-RT-tasks(n) poweroff(o) show-registers(p) show-all-timers(q) sync(s) " +
	"show-task-states(t) unmount(u) show-blocked-tasks(w) \n"

// sysrq runs letter c against the guest whose init is host pid init and
// returns the text the kernel's handler would print, one "\n"-ended line
// per printk. The lines also go to the console log, as printk's do.
func (k *kernel) sysrq(c byte, init int) string {
	var out strings.Builder
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		k.logf("%s", line)
		out.WriteString(line + "\n")
	}
	switch {
	case c >= '0' && c <= '9':
		say("sysrq: Changing Loglevel")
		say("sysrq: Loglevel set to %c", c)
	case c == 'b':
		say("sysrq: Resetting")
		unix.Kill(os.Getpid(), unix.SIGUSR2)
	case c == 'o':
		say("sysrq: Power Off")
		unix.Kill(os.Getpid(), unix.SIGUSR1)
	case c == 'c':
		say("sysrq: Trigger a crash")
		k.crash.Store(true)
		unix.Kill(os.Getpid(), unix.SIGUSR1)
	case c == 'e' || c == 'i':
		sig, what := unix.SIGTERM, "Terminate All Tasks"
		if c == 'i' {
			sig, what = unix.SIGKILL, "Kill All Tasks"
		}
		say("sysrq: %s", what)
		for _, pid := range guestProcs(init) {
			if pid != init {
				unix.Kill(pid, sig)
			}
		}
	case c == 'f':
		say("sysrq: Manual OOM execution")
		if pid, name := biggestTask(init); pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
			say("Out of memory: Killed process %d (%s)", guestPid(pid), name)
		}
	case c == 'j':
		say("sysrq: Emergency Thaw of all frozen filesystems")
	case c == 'n':
		say("sysrq: Nice All RT Tasks")
		for _, pid := range guestProcs(init) {
			if a, err := unix.SchedGetAttr(pid, 0); err == nil && (a.Policy == unix.SCHED_FIFO || a.Policy == unix.SCHED_RR) {
				unix.SchedSetAttr(pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
			}
		}
	case c == 'm':
		say("sysrq: Show Memory")
		out.WriteString(memoryReport(init))
	case c == 'p':
		say("sysrq: Show Regs")
	case c == 'q':
		say("sysrq: Show clockevent devices & pending hrtimers (no others)")
	case c == 's':
		say("sysrq: Emergency Sync")
		unix.Sync()
		k.logf("Emergency Sync complete")
	case c == 't' || c == 'w':
		if c == 't' {
			say("sysrq: Show State")
		} else {
			say("sysrq: Show Blocked State")
		}
		out.WriteString(taskReport(init, c == 'w'))
	case c == 'u':
		say("sysrq: Emergency Remount R/O")
		if err := remountReadOnly(init); err != nil {
			k.logf("Emergency Remount R/O: %v", err)
		} else {
			k.logf("Emergency Remount complete")
		}
	default:
		say("%s", strings.TrimSuffix(sysrqHelp, "\n"))
	}
	s := out.String()
	if len(s) > plan.MaxReplyText {
		s = s[:plan.MaxReplyText]
	}
	return s
}

// task is one guest process as /proc shows it.
type task struct {
	host, guest, ppid int
	comm              string
	state             byte
	flags             uint64
	rssPages          int64
}

// readTask reads /proc/PID/stat and NSpid of host pid pid.
func readTask(pid int) (task, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return task{}, false
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return task{}, false
	}
	f := strings.Fields(string(b[close+1:]))
	if len(f) < 22 {
		return task{}, false
	}
	t := task{host: pid, guest: guestPid(pid), comm: string(b[open+1 : close]), state: f[0][0]}
	t.ppid, _ = strconv.Atoi(f[1])
	t.flags, _ = strconv.ParseUint(f[6], 10, 64)
	t.rssPages, _ = strconv.ParseInt(f[21], 10, 64)
	if t.guest == 1 {
		t.ppid = 0 // the parent is K, outside the guest
	} else if t.ppid != 0 {
		t.ppid = guestPid(t.ppid)
	}
	return t, true
}

// guestPid maps a host pid to the pid the guest sees (the last NSpid
// entry), or returns it unchanged when that is unknown.
func guestPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return pid
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "NSpid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
					return n
				}
			}
		}
	}
	return pid
}

// guestTasks lists the guest's processes sorted by guest pid.
func guestTasks(init int) []task {
	var ts []task
	for _, pid := range guestProcs(init) {
		if t, ok := readTask(pid); ok {
			ts = append(ts, t)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].guest < ts[j].guest })
	return ts
}

// taskReport prints one line per task in the kernel's sched_show_task
// layout (the stack depth is not known from user space and shows as 0).
func taskReport(init int, blockedOnly bool) string {
	var b strings.Builder
	for _, t := range guestTasks(init) {
		if blockedOnly && t.state != 'D' {
			continue
		}
		fmt.Fprintf(&b, "task:%-15.15s state:%c stack:%-5d pid:%-5d ppid:%-6d flags:0x%08x\n",
			t.comm, t.state, 0, t.guest, t.ppid, t.flags&0xffffffff)
	}
	return b.String()
}

// memoryReport sums the guest's resident memory, in the kernel's
// "Mem-Info:" style.
func memoryReport(init int) string {
	var rss int64
	ts := guestTasks(init)
	for _, t := range ts {
		rss += t.rssPages
	}
	page := int64(os.Getpagesize())
	return fmt.Sprintf("Mem-Info:\n%d tasks, %d pages resident (%d kB)\n", len(ts), rss, rss*page/1024)
}

// biggestTask is the guest process (not init) with the largest resident set.
func biggestTask(init int) (int, string) {
	best, bestRSS, name := 0, int64(-1), ""
	for _, t := range guestTasks(init) {
		if t.host != init && t.rssPages > bestRSS {
			best, bestRSS, name = t.host, t.rssPages, t.comm
		}
	}
	return best, name
}

// stackReport answers "stack PID" for guest pid want: the task's syscall
// registers as the stack words and its wait channel (or the host's kernel
// stack where readable) as the call trace. ok is false when no guest task
// has that pid.
func stackReport(init, want int) (string, bool) {
	host := 0
	for _, pid := range append(guestProcs(init), init) {
		if guestPid(pid) == want {
			host = pid
			break
		}
	}
	if host == 0 || want == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("Stack:\n")
	if sc, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", host)); err == nil {
		f := strings.Fields(string(sc))
		for i, w := range f {
			v, err := strconv.ParseUint(strings.TrimPrefix(w, "0x"), 16, 64)
			if i == 0 {
				v, err = strconv.ParseUint(w, 10, 64)
			}
			if err != nil {
				continue
			}
			fmt.Fprintf(&b, " %08x", v)
			if i%4 == 3 || i == len(f)-1 {
				b.WriteString("\n")
			}
		}
	}
	b.WriteString("Call Trace:\n")
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stack", host)); err == nil && len(st) > 0 {
		for _, l := range strings.Split(strings.TrimRight(string(st), "\n"), "\n") {
			b.WriteString(" " + l + "\n")
		}
	} else {
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", host))
		w := strings.TrimSpace(string(wchan))
		if w == "" || w == "0" {
			w = "running"
		}
		fmt.Fprintf(&b, " [<0000000000000000>] %s\n", w)
	}
	return b.String(), true
}

// diskFS reports whether a mount of fstype is a disk file system (what the
// kernel's emergency remount touches: superblocks with a block device).
func diskFS(fstype string) bool {
	switch fstype {
	case "ext2", "ext3", "ext4", "fuseblk", "fuse.fuse2fs", "fuse":
		return true
	}
	return false
}

// remountReadOnly makes every disk file system of the guest's mount
// namespace read-only, deepest first, keeping the flags a user namespace
// may not drop. It works from a thread that joined the guest's mount
// namespace (mountemu.InGuest).
func remountReadOnly(init int) error {
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", init))
	if err != nil {
		return err
	}
	type mnt struct {
		point string
		flags uintptr
	}
	var ms []mnt
	for _, l := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 || !diskFS(g[0]) {
			continue
		}
		m := mnt{point: unescapeMount(f[4]), flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY}
		for _, o := range strings.Split(f[5], ",") {
			switch o {
			case "nosuid":
				m.flags |= unix.MS_NOSUID
			case "nodev":
				m.flags |= unix.MS_NODEV
			case "noexec":
				m.flags |= unix.MS_NOEXEC
			case "noatime":
				m.flags |= unix.MS_NOATIME
			case "nodiratime":
				m.flags |= unix.MS_NODIRATIME
			case "relatime":
				m.flags |= unix.MS_RELATIME
			}
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].point) > len(ms[j].point) })
	return mountemu.InGuest(init, func() error {
		var errs []string
		for _, m := range ms {
			if err := unix.Mount("", m.point, "", m.flags, ""); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", m.point, err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	})
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
