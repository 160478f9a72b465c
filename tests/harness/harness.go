// Package harness is the end-to-end test harness: it builds the umlkit
// binaries once per test process, makes busybox root images with mke2fs -d
// (no root needed), and boots guests — the real UML kernel (linux.uml from
// Debian's user-mode-linux) or our linux — collecting their console output.
//
// Every interop test uses it. Missing peers skip with the package to install
// (or fail under UMLKIT_REQUIRE_PRIV=1, see internal/testutil).
package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/mkrootfs"
	"github.com/umlkit/umlkit/internal/testutil"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Main runs a test package's tests and removes the binaries it built; call
// it from TestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if binDir != "" && os.Getenv("UMLKIT_BIN") == "" {
		os.RemoveAll(binDir)
	}
	return code
}

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the umlkit module")
	}
	return filepath.Dir(gomod), nil
}

// Binaries builds every cmd/ binary once per test process (or uses
// $UMLKIT_BIN when set, e.g. by `make test`) and returns the directory.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if d := os.Getenv("UMLKIT_BIN"); d != "" {
			binDir, buildErr = filepath.Abs(d)
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "umlkit-bin-")
		if buildErr != nil {
			return
		}
		// world-traversable: tests run these binaries as an ordinary user too
		if buildErr = os.Chmod(binDir, 0o755); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Bin returns the path of one of our binaries.
func Bin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Binaries(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s not built: %v", name, err)
	}
	return p
}

// Image describes a busybox root filesystem image.
type Image struct {
	// Init is the shell script installed as /init (and used with init=/init).
	// It runs with /proc, /sys and /dev mounted and stdio on /dev/console.
	Init string
	// Files are extra files: path inside the image -> content.
	Files map[string]string
	// SizeMB is the image size (default 64).
	SizeMB int
	// FSType is the mke2fs type (default ext4).
	FSType string
}

// initPrologue makes /init self-sufficient on either kernel: it mounts the
// pseudo filesystems and puts stdio on the console.
const initPrologue = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
`

// RootDir populates dir as a busybox root filesystem (internal/mkrootfs)
// with img's /init and files.
func RootDir(t testing.TB, dir string, img Image) {
	t.Helper()
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		testutil.Skip(t, "static busybox not installed at %s (apt-get install busybox-static)", bb)
	}
	files := map[string]string{"init": initPrologue + img.Init + "\n"}
	for k, v := range img.Files {
		files[k] = v
	}
	if err := mkrootfs.BusyboxTree(dir, bb, files); err != nil {
		t.Fatal(err)
	}
}

// BusyboxImage builds an ext image from img in dir and returns its path.
func BusyboxImage(t testing.TB, dir string, img Image) string {
	t.Helper()
	mke2fs := testutil.Peer(t, "mke2fs", "e2fsprogs")
	root := filepath.Join(dir, "rootdir")
	RootDir(t, root, img)
	size := img.SizeMB
	if size == 0 {
		size = 64
	}
	fstype := img.FSType
	if fstype == "" {
		fstype = "ext4"
	}
	path := filepath.Join(dir, "root.img")
	out, err := exec.Command(mke2fs, "-q", "-F", "-t", fstype, "-d", root, path, fmt.Sprintf("%dM", size)).CombinedOutput()
	if err != nil {
		t.Fatalf("mke2fs -d: %v\n%s", err, out)
	}
	os.RemoveAll(root)
	return path
}

// Guest is a running kernel (real UML or ours) with its console captured.
type Guest struct {
	Cmd   *exec.Cmd
	stdin io.WriteCloser
	out   testutil.SyncBuffer
	done  chan struct{}
	err   error
}

// Start runs argv (the kernel and its command line) with env added to the
// environment, stdin a pipe held open, and stdout+stderr captured. The guest
// is killed at test cleanup if still running.
func Start(t testing.TB, env []string, argv ...string) *Guest {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	return startCmd(t, cmd)
}

// startCmd starts cmd in its own process group with stdin a pipe held open
// and stdout+stderr captured; the group is killed at cleanup.
func startCmd(t testing.TB, cmd *exec.Cmd) *Guest {
	t.Helper()
	g := &Guest{done: make(chan struct{}), Cmd: cmd}
	cmd.Stdout = &g.out
	cmd.Stderr = &g.out
	cmd.SysProcAttr.Setpgid = true
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		g.err = cmd.Wait()
		stdin.Close()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-g.done
		}
		if t.Failed() {
			t.Logf("console output of %s:\n%s", cmd.Path, g.Output())
		}
	})
	return g
}

// Stdin is the guest's console input (the pipe on its stdin).
func (g *Guest) Stdin() io.Writer { return g.stdin }

// Output returns everything the guest printed so far.
func (g *Guest) Output() string { return g.out.String() }

// WaitOutput waits until the output contains s; it gives up early when the
// process exits without printing it.
func (g *Guest) WaitOutput(s string, d time.Duration) error {
	exited := false
	err := testutil.WaitFor(d, func() bool {
		if strings.Contains(g.Output(), s) {
			return true
		}
		select {
		case <-g.done:
			exited = true
			return strings.Contains(g.Output(), s) || true
		default:
			return false
		}
	})
	if exited && !strings.Contains(g.Output(), s) {
		return fmt.Errorf("process exited without printing %q", s)
	}
	if err != nil {
		return fmt.Errorf("waiting %v for %q: %w", d, s, err)
	}
	return nil
}

// Wait waits for the process to exit and returns its exit status.
func (g *Guest) Wait(d time.Duration) (int, error) {
	select {
	case <-g.done:
	case <-time.After(d):
		return -1, fmt.Errorf("guest still running after %v", d)
	}
	if g.err == nil {
		return 0, nil
	}
	if ee, ok := g.err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return -1, g.err
}

// RealUML returns the path of Debian's linux.uml or skips.
func RealUML(t testing.TB) string {
	t.Helper()
	p := testutil.Peer(t, "linux.uml", "user-mode-linux")
	testutil.RequireRoot(t) // UML needs ptrace and exec-able /dev/shm; CI runs as root
	return p
}

// BootRealUML boots Debian's linux.uml on image with init=/init and extra
// command-line words; uml_dir is a fresh temp dir.
func BootRealUML(t testing.TB, image string, extra ...string) *Guest {
	t.Helper()
	uml := RealUML(t)
	umlDir := t.TempDir()
	argv := []string{uml, "ubd0=" + image, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null",
		"init=/init", "uml_dir=" + umlDir}
	argv = append(argv, extra...)
	// UML's tmpdir checks look at TMPDIR; keep it under the test's dir.
	return Start(t, []string{"TMPDIR=" + umlDir}, argv...)
}
