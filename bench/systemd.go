package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// systemd: issue 16's stock Debian 12 (debootstrap minbase with systemd-sysv,
// udev, iproute2, procps, dbus; root without a password, fstab
// `/dev/ubda / ext4`, console-getty) booted with UML's plain command line
// on our linux (as root) and on linux.uml: time from launch to the login
// prompt, and from `systemctl poweroff` (typed after logging in as root) to
// the kernel's exit. The chroot comes from the e2e tests' cache when it is
// there, else from one debootstrap into the same cache.

const (
	stockTar      = "/var/cache/umlkit-test/debian-bookworm-minbase+adduser+systemd-sysv+udev+iproute2+procps+dbus.tar"
	stockIncludes = "adduser,systemd-sysv,udev,iproute2,procps,dbus"
)

// stockSetup makes the stock image in the run's directory.
func stockSetup(e *Env) error {
	if _, err := os.Stat(realUML); err != nil {
		return fmt.Errorf("%w: %s not installed (apt-get install user-mode-linux)", errSkip, realUML)
	}
	if _, err := os.Stat(stockTar); err != nil {
		if err := debootstrapStock(); err != nil {
			return err
		}
	}
	root := filepath.Join(e.Dir, "stock-root")
	os.MkdirAll(root, 0o755)
	steps := [][]string{
		{"tar", "--numeric-owner", "-xpf", stockTar, "-C", root},
		{"chroot", root, "passwd", "-d", "root"},
		{"chroot", root, "systemctl", "enable", "console-getty.service"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	os.Remove(filepath.Join(root, "usr/sbin/policy-rc.d"))
	os.WriteFile(filepath.Join(root, "etc/fstab"), []byte("/dev/ubda / ext4 defaults 0 1\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("stock\n"), 0o644)
	img := filepath.Join(e.Dir, "stock.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "2G").CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs: %v: %s", err, out)
	}
	e.Vars["stock"] = img
	return os.RemoveAll(root)
}

// debootstrapStock fills the e2e tests' cache with the stock chroot.
func debootstrapStock() error {
	scratch, err := os.MkdirTemp(filepath.Dir(stockTar), ".debootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	fmt.Fprintf(os.Stderr, "debootstrap bookworm (once, cached in %s)...\n", filepath.Dir(stockTar))
	if out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+stockIncludes,
		"bookworm", scratch, "http://deb.debian.org/debian").CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap: %v: %s", err, lastBytes(out, 2000))
	}
	tmp := stockTar + ".tmp"
	if out, err := exec.Command("tar", "--numeric-owner", "-cf", tmp, "-C", scratch, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	return os.Rename(tmp, stockTar)
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// consoleWatch collects a process's output and wakes waiters on new bytes.
type consoleWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	cond *sync.Cond
	eof  bool
}

func (c *consoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(p)
	c.mu.Unlock()
	c.cond.Broadcast()
	return len(p), nil
}

func (c *consoleWatch) close() {
	c.mu.Lock()
	c.eof = true
	c.mu.Unlock()
	c.cond.Broadcast()
}

// wait blocks until the output after offset from contains s (no newline
// needed: a login prompt has none) and returns the offset past it.
func (c *consoleWatch) wait(s string, from int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if i := bytes.Index(c.buf.Bytes()[from:], []byte(s)); i >= 0 {
			return from + i + len(s), nil
		}
		if c.eof {
			return 0, fmt.Errorf("exited before printing %q; last output:\n%s", s, lastBytes(c.buf.Bytes(), 2000))
		}
		c.cond.Wait()
	}
}

// bootStock boots a fresh copy of the stock image on kernel and times the
// login prompt and the poweroff.
func bootStock(e *Env, kernel string) ([]Metric, error) {
	img := filepath.Join(e.Dir, "run.img")
	if out, err := exec.Command("cp", "--sparse=always", e.Vars["stock"], img).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy image: %v: %s", err, out)
	}
	defer os.Remove(img)
	umlDir := filepath.Join(e.Dir, "uml")
	os.MkdirAll(umlDir, 0o755)
	cmd := exec.Command(kernel, "ubd0="+img, "uml_dir="+umlDir, "con=null", "con0=fd:0,fd:1", "mem=256M")
	cmd.Env = append(os.Environ(), "TMPDIR="+umlDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	w := &consoleWatch{}
	w.cond = sync.NewCond(&w.mu)
	cmd.Stdout, cmd.Stderr = w, w
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	defer stdin.Close()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); w.close(); done <- err }()
	timer := time.AfterFunc(5*time.Minute, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()
	off, err := w.wait("stock login:", 0)
	if err != nil {
		return nil, err
	}
	login := time.Since(t0)
	io.WriteString(stdin, "root\n")
	if off, err = w.wait("root@stock:~#", off); err != nil {
		return nil, err
	}
	io.WriteString(stdin, "systemctl is-system-running --wait; systemctl poweroff\n")
	if _, err = w.wait("systemctl poweroff", off); err != nil { // the echo of the command
		return nil, err
	}
	t1 := time.Now()
	if err := <-done; err != nil {
		return nil, fmt.Errorf("%s exited: %v", kernel, err)
	}
	off2 := time.Since(t1)
	if off2 <= 0 {
		return nil, errors.New("no poweroff time")
	}
	return []Metric{{"launch to login prompt", login.Seconds(), "s"}, {"systemctl poweroff to exit", off2.Seconds(), "s"}}, nil
}
