package e2e

// Issue 13: the guest must never gain more on the host than a UML guest
// could. Each test runs one attack from the review against our linux, run
// by root and by an ordinary user, and asserts the host refused it; where it
// makes sense the same probe runs on Debian's linux.uml, whose answers are
// logged for docs/linux.md ("Security").

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// hostSysctls are host-wide settings a guest root tried to write.
var hostSysctls = []string{"kernel/core_pattern", "vm/swappiness", "fs/file-max", "kernel/panic"}

func readSysctls(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, s := range hostSysctls {
		b, err := os.ReadFile("/proc/sys/" + s)
		if err != nil {
			t.Fatal(err)
		}
		m[s] = string(b)
	}
	return m
}

// sysctlProbe is the guest side: the core_pattern escape of the review,
// writes of host-wide sysctls (the value they already have, so a failure
// of the test changes nothing but core_pattern, which the test restores),
// the same through a fresh procfs, and what a guest must still be able to
// do (its own network namespace's sysctls).
func sysctlProbe(tag string) string {
	return `mount -o remount,rw / 2>/dev/null
printf '#!/bin/sh\nid > /tmp/` + tag + `\n' > /tmp/h.sh; chmod 755 /tmp/h.sh
echo '|/proc/%P/root/tmp/h.sh' > /proc/sys/kernel/core_pattern 2>/dev/null && echo CORE-PATTERN-WRITTEN || echo CORE-PATTERN-REFUSED
sh -c 'kill -SEGV $$'
for s in vm/swappiness fs/file-max kernel/panic; do v=$(cat /proc/sys/$s); echo $v > /proc/sys/$s 2>/dev/null && echo WRITTEN-$s || echo REFUSED-$s; done
mkdir -p /mnt/p; mount -t proc proc /mnt/p && { echo core > /mnt/p/sys/kernel/core_pattern 2>/dev/null && echo FRESH-PROC-WRITTEN || echo FRESH-PROC-REFUSED; umount /mnt/p; }
echo 1 > /proc/sys/net/ipv4/ip_forward && echo NETNS-SYSCTL-OK
[ -s /proc/kcore ] && echo KCORE-VISIBLE || echo KCORE-MASKED
grep CapBnd /proc/self/status`
}

func TestIntegrationIsolationSysctl(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		before := readSysctls(t)
		t.Cleanup(func() { os.WriteFile("/proc/sys/kernel/core_pattern", []byte(before["kernel/core_pattern"]), 0o644) })
		tag := "ESCAPED-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(r.dir)
		os.Remove("/tmp/" + tag)
		out := r.boot(sysctlProbe(tag))
		expect(t, out, "CORE-PATTERN-REFUSED", "REFUSED-vm/swappiness", "REFUSED-fs/file-max", "REFUSED-kernel/panic",
			"FRESH-PROC-REFUSED", "NETNS-SYSCTL-OK", "KCORE-MASKED")
		if after := readSysctls(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("host sysctls changed by the guest:\n before %v\n after  %v", before, after)
		}
		time.Sleep(200 * time.Millisecond) // a core_pattern helper would have run by now
		if b, err := os.ReadFile("/tmp/" + tag); err == nil {
			os.Remove("/tmp/" + tag)
			t.Errorf("the guest ran a program on the host through core_pattern: %s", b)
		}
	})
}

// TestIntegrationIsolationSysctlUML runs the same probe on linux.uml: its
// guest root writes its own kernel's sysctls, the host's stay untouched.
func TestIntegrationIsolationSysctlUML(t *testing.T) {
	testutil.RequireRoot(t)
	before := readSysctls(t)
	tag := "ESCAPED-UML-" + strconv.Itoa(os.Getpid())
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: sysctlProbe(tag) + "\npoweroff -f\n"})
	g := harness.BootRealUML(t, img)
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	var seen []string
	for _, w := range []string{"CORE-PATTERN-WRITTEN", "CORE-PATTERN-REFUSED", "WRITTEN-vm/swappiness", "REFUSED-vm/swappiness", "FRESH-PROC-WRITTEN", "FRESH-PROC-REFUSED", "NETNS-SYSCTL-OK", "KCORE-VISIBLE", "KCORE-MASKED"} {
		if strings.Contains(g.Output(), w) {
			seen = append(seen, w)
		}
	}
	t.Logf("linux.uml guest root: %s", strings.Join(seen, " "))
	if after := readSysctls(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("host sysctls changed by a linux.uml guest: %v -> %v", before, after)
	}
	if _, err := os.Stat("/tmp/" + tag); err == nil {
		os.Remove("/tmp/" + tag)
		t.Errorf("linux.uml's guest ran a program on the host")
	}
}

// mountProbe is the guest side of the mount attacks; share is a host
// directory the guest may mount with hostfs.
func mountProbe(share string) string {
	return `mount -o remount,rw / 2>/dev/null
echo 'guest:x:1000:1000::/:/bin/sh' >> /etc/passwd; mkdir -p /mnt/h /mnt/r /mnt/q; chmod 777 /mnt/h
su guest -c 'unshare -Urm sh -c "mount -t hostfs none /mnt/h -o ` + share + ` && echo pwned > /mnt/h/BYPASS"' 2>&1 && echo BYPASS-MOUNTED || echo BYPASS-REFUSED
mount /dev/ubda /mnt/r 2>&1 && echo LIVE-ROOT-MOUNTED || echo LIVE-ROOT-REFUSED
mount -o ro /dev/ubda /mnt/q 2>&1 && { ls /mnt/q/init && echo LIVE-ROOT-RO-OK; umount /mnt/q; }
mount -t hostfs none /mnt/h -o ` + share + ` && cat /mnt/h/keep.txt | sed s/host/ROOT-HOSTFS-OK/`
}

// TestIntegrationIsolationMountUML runs the mount probe on linux.uml.
func TestIntegrationIsolationMountUML(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	os.MkdirAll(share, 0o755)
	os.WriteFile(filepath.Join(share, "keep.txt"), []byte("host\n"), 0o644)
	img := harness.BusyboxImage(t, dir, harness.Image{Init: mountProbe(share) + "\npoweroff -f\n"})
	g := harness.BootRealUML(t, img)
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	var seen []string
	for _, w := range []string{"BYPASS-MOUNTED", "BYPASS-REFUSED", "LIVE-ROOT-MOUNTED", "LIVE-ROOT-REFUSED", "LIVE-ROOT-RO-OK", "ROOT-HOSTFS-OK"} {
		if strings.Contains(g.Output(), w) {
			seen = append(seen, w)
		}
	}
	t.Logf("linux.uml: %s", strings.Join(seen, " "))
	if testing.Verbose() {
		t.Logf("linux.uml console:\n%s", g.Output())
	}
	if _, err := os.Stat(filepath.Join(share, "BYPASS")); err == nil {
		t.Errorf("a linux.uml guest user wrote to the host through hostfs")
	}
}

// TestIntegrationIsolationMount: a guest user who makes a user namespace of
// its own is not privileged over the guest, so the mount emulator does not
// act for it (the review's hostfs write); and no second read-write mount of
// the live root disk is made (the review's corrupted root_fs).
func TestIntegrationIsolationMount(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		r.file("share/keep.txt", "host\n")
		share := filepath.Join(r.dir, "share")
		out := r.boot(mountProbe(share))
		expect(t, out, "BYPASS-REFUSED", "LIVE-ROOT-REFUSED", "ROOT-HOSTFS-OK")
		if _, err := os.Stat(filepath.Join(share, "BYPASS")); err == nil {
			t.Errorf("a guest user's nested user namespace wrote to the host through hostfs")
		}
	})
}

// TestIntegrationIsolationFDs lists every fd of every guest process (the
// guard included) from the host: none may be an fd of linux's own (its
// stdin/stdout pipes, /dev/fuse, /dev/net/tun, the seccomp listener) or one
// that whoever started linux left open (a sentinel file at fd 3).
func TestIntegrationIsolationFDs(t *testing.T) {
	for _, unpriv := range []bool{false, true} {
		name := map[bool]string{false: "root", true: "user"}[unpriv]
		t.Run(name, func(t *testing.T) {
			r := newMountRun(t, unpriv)
			img := harness.BusyboxImage(t, r.dir, harness.Image{Init: "echo FD-READY\nsleep 60\npoweroff -f\n"})
			r.chown(img)
			sentinel := r.file("sentinel", "do not leak\n")
			sf, err := os.Open(sentinel)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			argv := []string{harness.Bin(t, "linux"), "ubd0=" + img, "init=/init", "uml_dir=" + filepath.Join(r.dir, "uml")}
			var cmd *exec.Cmd
			if r.user != nil {
				cmd = r.user.Command(argv...)
			} else {
				cmd = exec.Command(argv[0], argv[1:]...)
			}
			cmd.ExtraFiles = []*os.File{sf}
			g := harness.StartCmd(t, cmd)
			if err := g.WaitOutput("FD-READY", bootTimeout); err != nil {
				t.Fatalf("%v\n%s", err, g.Output())
			}
			own := map[string]bool{}
			for _, fd := range []string{"0", "1", "2"} {
				if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", g.Pid(), fd)); err == nil && strings.HasPrefix(l, "pipe:") {
					own[l] = true
				}
			}
			procs := guestProcesses(t, g.Pid())
			if len(procs) < 2 {
				t.Fatalf("found %d guest processes (want init and the guard at least)", len(procs))
			}
			for _, pid := range procs {
				ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
				for _, e := range ents {
					l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
					if err != nil {
						continue
					}
					if l == sentinel || own[l] || l == "/dev/fuse" || l == "/dev/net/tun" || strings.Contains(l, "seccomp") || strings.Contains(l, "/dev/ubd") {
						t.Errorf("guest process %d (%s) holds fd %s -> %s", pid, comm(pid), e.Name(), l)
					}
				}
			}
			t.Logf("checked the fds of %d guest processes", len(procs))
		})
	}
}

// guestProcesses returns the host pids of the processes below linux (pid p)
// that live in another pid namespace than linux: the guest's.
func guestProcesses(t *testing.T, p int) []int {
	t.Helper()
	pidNS := func(pid int) string { l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); return l }
	parent := map[int]int{}
	for _, st := range harness.ProcStats() {
		parent[st.Pid] = st.PPid
	}
	below := func(pid int) bool {
		for i := 0; i < 64 && pid > 1; i++ {
			if pid = parent[pid]; pid == p {
				return true
			}
		}
		return false
	}
	mine := pidNS(p)
	var out []int
	for pid := range parent {
		if below(pid) && pidNS(pid) != mine && pidNS(pid) != "" {
			out = append(out, pid)
		}
	}
	return out
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
