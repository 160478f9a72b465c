package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/mkrootfs"
)

// Booting guests for the benchmarks of linux against Debian's linux.uml on
// the same busybox image (shared/docs/baselines.md #1, #2, #6), and the
// measurements of boot, syscall and mem: boot time to an init marker, guest
// syscall costs relative to the host, and RSS of an idle guest.

const realUML = "/usr/bin/linux.uml"

// guestImage builds a busybox image with benchtool at /bench/benchtool and
// the given init script at /init; each variant boots its own copy (both
// kernels lock their disks).
func guestImage(e *Env, name, init string) (string, error) {
	tool := filepath.Join(e.Dir, "benchtool")
	if _, err := os.Stat(tool); err != nil {
		src, err := filepath.Abs("bench/guest/benchtool.c")
		if err != nil {
			return "", err
		}
		if out, err := exec.Command("gcc", "-O2", "-static", "-o", tool, src).CombinedOutput(); err != nil {
			return "", fmt.Errorf("gcc benchtool: %v: %s", err, out)
		}
	}
	tree := filepath.Join(e.Dir, name+".tree")
	os.RemoveAll(tree)
	files := map[string]string{"init": "#!/bin/sh\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n" +
		"[ -e /proc/self ] || mount -t proc proc /proc\n[ -e /dev/null ] || mount -t devtmpfs d /dev\nexec </dev/console >/dev/console 2>&1\n" + init}
	if err := mkrootfs.BusyboxTree(tree, "", files); err != nil {
		return "", err
	}
	os.MkdirAll(filepath.Join(tree, "bench"), 0o755)
	data, err := os.ReadFile(tool)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tree, "bench/benchtool"), data, 0o755); err != nil {
		return "", err
	}
	os.WriteFile(filepath.Join(tree, "bench/file"), []byte("x"), 0o644)
	img := filepath.Join(e.Dir, name+".img")
	os.Remove(img)
	if err := mkrootfs.MakeImage(context.Background(), tree, img, 128); err != nil {
		return "", err
	}
	os.RemoveAll(tree)
	return img, nil
}

// oursRelay is the kind of our linux with UMLKIT_NET_RELAY=1: devices
// that would get the kernel data path (run as root) are relayed by K.
const oursRelay = "ours-relay"

// bootArgs returns the command line for kernel k ("ours", oursRelay or
// "real").
func bootArgs(e *Env, k, img string, extra ...string) []string {
	uml := filepath.Join(e.Dir, "uml-"+k)
	os.MkdirAll(uml, 0o755)
	switch k {
	case "ours":
		return append([]string{e.Ours("linux"), "ubd0=" + img, "init=/init", "uml_dir=" + uml, "quiet"}, extra...)
	case oursRelay: // ours with every eth device on K's relay, no kernel data path
		return append([]string{"env", "UMLKIT_NET_RELAY=1", e.Ours("linux"), "ubd0=" + img, "init=/init", "uml_dir=" + uml, "quiet"}, extra...)
	}
	return append([]string{realUML, "ubd0=" + img, "mem=128M", "con0=fd:0,fd:1", "con=null", "ssl=null", "init=/init", "uml_dir=" + uml}, extra...)
}

// runGuest boots argv, calls onLine for every console line until it returns
// true (the time of that line is returned), then waits for the exit.
func runGuest(argv []string, onLine func(string) bool, timeout time.Duration) (marker, exit time.Duration, out string, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "TMPDIR="+os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, "", err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	timer := time.AfterFunc(timeout, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()
	var b strings.Builder
	sc := bufio.NewScanner(pr)
	found := false
	for sc.Scan() {
		line := sc.Text()
		b.WriteString(line + "\n")
		if !found && onLine(line) {
			marker = time.Since(t0)
			found = true
		}
	}
	<-done
	exit = time.Since(t0)
	if !found {
		return 0, 0, b.String(), fmt.Errorf("%s: marker never seen; output:\n%s", argv[0], b.String())
	}
	return marker, exit, b.String(), nil
}

// syscallScript runs benchtool's syscall loops in the guest, fewer of them
// on linux.uml.
func syscallScript(_ *Env, kernel string) string {
	n, m := "200000", "500"
	if kernel == "real" {
		n, m = "20000", "100" // UML is two orders of magnitude slower
	}
	return "/bench/benchtool sys " + n + " /bench/file " + m + "\npoweroff -f\n"
}

// writeHostFile writes the file the host's open+close loop opens.
func writeHostFile(e *Env) error {
	os.WriteFile(filepath.Join(e.Dir, "hostfile"), []byte("x"), 0o644)
	return nil
}

// syscallsOnHost runs the guest's syscall loops on the host.
func syscallsOnHost(e *Env) (string, error) {
	out, err := exec.Command(filepath.Join(e.Dir, "benchtool"), "sys", "200000", filepath.Join(e.Dir, "hostfile"), "500").Output()
	return string(out), err
}

// idleRSS boots argv, waits (at most 60 s) for the guest to print
// GUEST-IDLE, lets it settle for 2 s and reports the RSS of the kernel's
// processes (treeRSS).
func idleRSS(argv []string, kernel string) ([]Metric, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	sc := bufio.NewScanner(pr)
	go func() { time.Sleep(60 * time.Second); pw.Close() }()
	for sc.Scan() {
		if strings.Contains(sc.Text(), "GUEST-IDLE") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	time.Sleep(2 * time.Second)
	kb := treeRSS(cmd.Process.Pid, kernel == "ours")
	return []Metric{{"RSS of the kernel's processes", float64(kb) / 1024, "MB"}}, nil
}

// treeRSS sums VmRSS (kB) over pid's process tree, counting each address
// space once (UML's helper threads share its mm). For ours the guest's own
// processes (in the guest's pid namespace, the sleep) are left out, as
// UML's guest memory is counted once through its physmem mapping.
func treeRSS(pid int, skipGuest bool) int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	seen := map[string]bool{}
	total := 0
	var walk func(int)
	walk = func(p int) {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if skipGuest && strings.Contains(string(st), "NSpid:") {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "NSpid:") && len(strings.Fields(l)) > 2 {
					return // a guest process
				}
			}
		}
		maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p))
		key := string(maps)
		if !seen[key] {
			seen[key] = true
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "VmRSS:") {
					kb, _ := strconv.Atoi(strings.Fields(l)[1])
					total += kb
				}
			}
		}
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return total
}
