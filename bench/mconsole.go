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

// mconsoleCalls is how many calls one measurement makes.
const mconsoleCalls = 100

// mcGuest is the benchmark's guest: Setup starts it, Check halts it.
type mcGuest struct {
	mu     sync.Mutex // guards cmd and out
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan struct{} // closed when linux.uml has exited
}

var mconsoleGuest = &mcGuest{exited: make(chan struct{})}

// start boots the guest (umid mc, under e.Dir/.uml), waits for its mconsole
// socket and warms both clients up.
func (g *mcGuest) start(e *Env) error {
	img, err := mconsoleImage(e.Dir)
	if err != nil {
		return err
	}
	if err := g.launch(e, img); err != nil {
		return fmt.Errorf("start linux.uml: %w", err)
	}
	sock := filepath.Join(e.Dir, ".uml", "mc", "mconsole")
	if err := g.waitReady(sock); err != nil {
		return err
	}
	// warm-up, as the baseline does
	for i := 0; i < 5; i++ {
		exec.Command("/usr/bin/uml_mconsole", sock, "version").Run()
		exec.Command(e.Ours("uml_mconsole"), sock, "version").Run()
	}
	return nil
}

// launch starts linux.uml on img. It is started from a goroutine locked to
// its OS thread for the life of the process, so Pdeathsig kills it if the
// bench dies before Check halts it.
func (g *mcGuest) launch(e *Env, img string) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cmd := exec.Command("/usr/bin/linux.uml", "ubd0="+img, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null",
			"init=/init", "uml_dir="+filepath.Join(e.Dir, ".uml"), "umid=mc")
		cmd.Env = append(os.Environ(), "TMPDIR="+e.Dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		g.mu.Lock()
		cmd.Stdout, cmd.Stderr = &lockedWriter{&g.mu, &g.out}, &lockedWriter{&g.mu, &g.out}
		g.cmd = cmd
		g.mu.Unlock()
		if _, err := cmd.StdinPipe(); err != nil {
			started <- err
			return
		}
		started <- cmd.Start()
		cmd.Wait()
		close(g.exited)
		select {} // keep the thread: Pdeathsig fires when it exits
	}()
	return <-started
}

// waitReady waits (at most 120 s) for the guest's MC-READY and its mconsole
// socket; it kills the guest if they do not come.
func (g *mcGuest) waitReady(sock string) error {
	for deadline := time.Now().Add(120 * time.Second); ; {
		g.mu.Lock()
		ready := strings.Contains(g.out.String(), "MC-READY")
		g.mu.Unlock()
		if _, err := os.Stat(sock); err == nil && ready {
			return nil
		}
		if time.Now().After(deadline) {
			syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("guest not ready after 120s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check compares ours' and the real client's replies, then stops the guest.
func (g *mcGuest) check(e *Env) error {
	defer g.stop(e)
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
}

// stop halts the guest through our client, waits for it, and kills its
// process group (UML's helper processes too) if anything is left.
func (g *mcGuest) stop(e *Env) {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	cmd := exec.Command(e.Ours("uml_mconsole"), "mc", "halt")
	cmd.Env = append(os.Environ(), "HOME="+e.Dir)
	cmd.Run()
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
	}
	syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
}

// oneShots times mconsoleCalls runs of the program at bin with args (each
// reply must start "OK " when there are args): wall time and the children's
// CPU time per call.
func oneShots(args ...string) programMeasure {
	return func(e *Env, bin string) ([]Metric, error) {
		env := append(os.Environ(), "HOME="+e.Dir)
		var r0, r1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &r0)
		t0 := time.Now()
		for i := 0; i < mconsoleCalls; i++ {
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			if out, err := cmd.Output(); err != nil || (len(args) > 0 && !strings.HasPrefix(string(out), "OK ")) {
				return nil, fmt.Errorf("%s %q: %v %q", bin, args, err, out)
			}
		}
		wall := float64(time.Since(t0).Microseconds()) / 1000 / mconsoleCalls
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &r1)
		cpu := func(r syscall.Rusage) float64 {
			return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e6
		}
		return []Metric{
			{"one-shot version call", wall, "ms"},
			{"CPU (user+sys) per call", (cpu(r1) - cpu(r0)) / mconsoleCalls, "ms"},
		}, nil
	}
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
