package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/mkrootfs"
)

// Benchmarks of linux against Debian's linux.uml on the same busybox image
// (shared/docs/baselines.md #1, #2, #6): boot time to an init marker, guest
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

// bootArgs returns the command line for kernel k ("ours" or "real").
func bootArgs(e *Env, k, img string, extra ...string) []string {
	uml := filepath.Join(e.Dir, "uml-"+k)
	os.MkdirAll(uml, 0o755)
	if k == "ours" {
		return append([]string{e.Ours("linux"), "ubd0=" + img, "init=/init", "uml_dir=" + uml, "quiet"}, extra...)
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

func init() {
	boot := func(k string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			marker, exit, _, err := runGuest(bootArgs(e, k, e.Vars["boot-"+k]), func(l string) bool { return strings.Contains(l, "BENCH-INIT-READY") }, 60*time.Second)
			if err != nil {
				return nil, err
			}
			return []Metric{
				{"launch -> init marker", float64(marker.Microseconds()) / 1000, "ms"},
				{"launch -> exit", float64(exit.Microseconds()) / 1000, "ms"},
			}, nil
		}
	}
	register(&Benchmark{
		Name: "boot",
		Doc:  "launch to init marker and to exit, ours vs linux.uml (same busybox image)",
		Setup: func(e *Env) error {
			for _, k := range []string{"ours", "real"} {
				img, err := guestImage(e, "boot-"+k, "echo BENCH-INIT-READY\npoweroff -f\n")
				if err != nil {
					return err
				}
				e.Vars["boot-"+k] = img
			}
			return nil
		},
		Variants: []Variant{{Name: "ours", Run: boot("ours")}, {Name: "real", Run: boot("real")}},
	})

	re := regexp.MustCompile(`BENCH getppid_ns=([0-9.]+) openclose_ns=([0-9.]+) forkexec_us=([0-9.]+)`)
	parse := func(out string) ([]float64, error) {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("no BENCH line in:\n%s", out)
		}
		var v []float64
		for _, s := range m[1:] {
			f, _ := strconv.ParseFloat(s, 64)
			v = append(v, f)
		}
		return v, nil
	}
	syscalls := func(k string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			var v []float64
			var err error
			if k == "host" {
				out, err := exec.Command(filepath.Join(e.Dir, "benchtool"), "sys", "200000", filepath.Join(e.Dir, "hostfile"), "500").Output()
				if err != nil {
					return nil, err
				}
				v, err = parse(string(out))
			} else {
				var out string
				_, _, out, err = runGuest(bootArgs(e, k, e.Vars["sys-"+k]), func(l string) bool { return strings.Contains(l, "BENCH ") }, 120*time.Second)
				if err != nil {
					return nil, err
				}
				v, err = parse(out)
			}
			if err != nil {
				return nil, err
			}
			return []Metric{{"getppid", v[0], "ns"}, {"open+close", v[1], "ns"}, {"fork+exec+wait", v[2], "us"}}, nil
		}
	}
	register(&Benchmark{
		Name: "syscall",
		Doc:  "getppid, open+close, fork+exec+wait in the guest (ours, linux.uml) and on the host",
		Setup: func(e *Env) error {
			os.WriteFile(filepath.Join(e.Dir, "hostfile"), []byte("x"), 0o644)
			for _, k := range []string{"ours", "real"} {
				n, m := "200000", "500"
				if k == "real" {
					n, m = "20000", "100" // UML is two orders of magnitude slower
				}
				img, err := guestImage(e, "sys-"+k, "/bench/benchtool sys "+n+" /bench/file "+m+"\npoweroff -f\n")
				if err != nil {
					return err
				}
				e.Vars["sys-"+k] = img
			}
			return nil
		},
		Variants: []Variant{{Name: "ours", Run: syscalls("ours")}, {Name: "real", Run: syscalls("real")}, {Name: "host", Run: syscalls("host")}},
	})

	mem := func(k string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			argv := bootArgs(e, k, e.Vars["mem-"+k])
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
			kb := treeRSS(cmd.Process.Pid, k == "ours")
			return []Metric{{"RSS of the kernel's processes", float64(kb) / 1024, "MB"}}, nil
		}
	}
	register(&Benchmark{
		Name: "mem",
		Doc:  "RSS of an idle guest's host processes (ours: P, K, fuse2fs; UML: once per address space)",
		Setup: func(e *Env) error {
			for _, k := range []string{"ours", "real"} {
				img, err := guestImage(e, "mem-"+k, "echo GUEST-IDLE\nexec sleep 1000\n")
				if err != nil {
					return err
				}
				e.Vars["mem-"+k] = img
			}
			return nil
		},
		Variants: []Variant{{Name: "ours", Run: mem("ours")}, {Name: "real", Run: mem("real")}},
	})
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
