package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mconsole: 100 one-shot `uml_mconsole mc version` calls against one idle
// real linux.uml guest (shared/docs/baselines.md #5: the real client takes
// ~1.65 ms/call there), ours vs Debian's, HOME pointing at the guest's
// uml_dir so both resolve the umid the same way; plus /bin/true as the
// process start-up floor. Check: both print the same reply; then the guest
// is halted through our client and its process group killed. (If a round
// fails, Check does not run: the guest then dies with the bench process
// through Pdeathsig, but UML's helper processes may survive it.)
func init() {
	const calls = 100
	var guest struct {
		mu     sync.Mutex
		cmd    *exec.Cmd
		out    bytes.Buffer
		exited chan struct{} // closed when linux.uml has exited
	}
	guest.exited = make(chan struct{})
	// stop halts the guest through our client, waits for it, and kills its
	// process group (UML's helper processes too) if anything is left.
	stop := func(e *Env) {
		if guest.cmd == nil || guest.cmd.Process == nil {
			return
		}
		cmd := exec.Command(e.Ours("uml_mconsole"), "mc", "halt")
		cmd.Env = append(os.Environ(), "HOME="+e.Dir)
		cmd.Run()
		select {
		case <-guest.exited:
		case <-time.After(20 * time.Second):
		}
		syscall.Kill(-guest.cmd.Process.Pid, syscall.SIGKILL)
	}
	loop := func(bin string, args ...string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			env := append(os.Environ(), "HOME="+e.Dir)
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_CHILDREN, &r0)
			t0 := time.Now()
			for i := 0; i < calls; i++ {
				cmd := exec.Command(bin, args...)
				cmd.Env = env
				if out, err := cmd.Output(); err != nil || (len(args) > 0 && !strings.HasPrefix(string(out), "OK ")) {
					return nil, fmt.Errorf("%s %q: %v %q", bin, args, err, out)
				}
			}
			wall := float64(time.Since(t0).Microseconds()) / 1000 / calls
			syscall.Getrusage(syscall.RUSAGE_CHILDREN, &r1)
			cpu := func(r syscall.Rusage) float64 {
				return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e6
			}
			return []Metric{
				{"one-shot version call", wall, "ms"},
				{"CPU (user+sys) per call", (cpu(r1) - cpu(r0)) / calls, "ms"},
			}, nil
		}
	}
	register(&Benchmark{
		Name: "mconsole",
		Doc:  "100 one-shot `uml_mconsole mc version` calls against a real linux.uml guest, ours vs Debian's",
		Setup: func(e *Env) error {
			img, err := mconsoleImage(e.Dir)
			if err != nil {
				return err
			}
			sock := filepath.Join(e.Dir, ".uml", "mc", "mconsole")
			started := make(chan error, 1)
			// The guest is started from a goroutine locked to its OS thread
			// for the life of the process, so Pdeathsig kills it if the bench
			// dies before Check halts it.
			go func() {
				runtime.LockOSThread()
				cmd := exec.Command("/usr/bin/linux.uml", "ubd0="+img, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null",
					"init=/init", "uml_dir="+filepath.Join(e.Dir, ".uml"), "umid=mc")
				cmd.Env = append(os.Environ(), "TMPDIR="+e.Dir)
				cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
				guest.mu.Lock()
				cmd.Stdout, cmd.Stderr = &lockedWriter{&guest.mu, &guest.out}, &lockedWriter{&guest.mu, &guest.out}
				guest.cmd = cmd
				guest.mu.Unlock()
				if _, err := cmd.StdinPipe(); err != nil {
					started <- err
					return
				}
				started <- cmd.Start()
				cmd.Wait()
				close(guest.exited)
				select {} // keep the thread: Pdeathsig fires when it exits
			}()
			if err := <-started; err != nil {
				return fmt.Errorf("start linux.uml: %w", err)
			}
			for deadline := time.Now().Add(120 * time.Second); ; {
				guest.mu.Lock()
				ready := strings.Contains(guest.out.String(), "MC-READY")
				guest.mu.Unlock()
				if _, err := os.Stat(sock); err == nil && ready {
					break
				}
				if time.Now().After(deadline) {
					syscall.Kill(-guest.cmd.Process.Pid, syscall.SIGKILL)
					return fmt.Errorf("guest not ready after 120s")
				}
				time.Sleep(100 * time.Millisecond)
			}
			// warm-up, as the baseline does
			for i := 0; i < 5; i++ {
				exec.Command("/usr/bin/uml_mconsole", sock, "version").Run()
				exec.Command(e.Ours("uml_mconsole"), sock, "version").Run()
			}
			return nil
		},
		Variants: []Variant{
			{Name: "ours", Run: func(e *Env) ([]Metric, error) { return loop(e.Ours("uml_mconsole"), "mc", "version")(e) }},
			{Name: "real", Run: loop("/usr/bin/uml_mconsole", "mc", "version")},
			{Name: "/bin/true", Run: loop("/bin/true")},
		},
		Check: func(e *Env) error {
			defer stop(e)
			env := append(os.Environ(), "HOME="+e.Dir)
			var outs []string
			for _, bin := range []string{e.Ours("uml_mconsole"), "/usr/bin/uml_mconsole"} {
				cmd := exec.Command(bin, "mc", "version")
				cmd.Env = env
				out, _ := cmd.Output()
				outs = append(outs, string(out))
			}
			if outs[0] != outs[1] {
				return fmt.Errorf("replies differ: ours %q, real %q", outs[0], outs[1])
			}
			return nil
		},
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// mconsoleImage makes a small busybox ext4 root whose /init idles.
func mconsoleImage(dir string) (string, error) {
	root := filepath.Join(dir, "rootdir")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("static busybox (apt-get install busybox-static): %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		return "", err
	}
	for _, app := range []string{"sh", "mount", "sleep", "hostname"} {
		os.Symlink("busybox", filepath.Join(root, "bin", app))
	}
	init := "#!/bin/sh\nexport PATH=/bin\nmount -t proc proc /proc\nmount -t devtmpfs devtmpfs /dev 2>/dev/null\n" +
		"exec </dev/console >/dev/console 2>&1\nhostname umltest\necho MC-READY\nwhile true; do sleep 10; done\n"
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(init), 0o755); err != nil {
		return "", err
	}
	img := filepath.Join(dir, "root.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "32M").CombinedOutput(); err != nil {
		return "", fmt.Errorf("mke2fs: %v %s", err, out)
	}
	return img, nil
}
