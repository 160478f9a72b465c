package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
)

// Daemon is a long-running helper process (a switch) with its stdout and
// stderr captured together.
type Daemon struct {
	Cmd  *exec.Cmd
	out  testutil.SyncBuffer
	done chan struct{}
}

// StartDaemon runs argv with stdin /dev/null (so uml_switch ignores it) and
// kills its process group at cleanup.
func StartDaemon(t testing.TB, argv ...string) *Daemon {
	t.Helper()
	d := &Daemon{done: make(chan struct{})}
	d.Cmd = exec.Command(argv[0], argv[1:]...)
	d.Cmd.Stdout = &d.out
	d.Cmd.Stderr = &d.out
	d.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", argv[0], err)
	}
	go func() { d.Cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.Stop(syscall.SIGKILL, 5*time.Second)
		if t.Failed() {
			t.Logf("output of %s:\n%s", strings.Join(argv, " "), d.Output())
		}
	})
	return d
}

// Output returns what the daemon printed so far.
func (d *Daemon) Output() string { return d.out.String() }

// WaitOutput waits until the output contains s.
func (d *Daemon) WaitOutput(s string, timeout time.Duration) error {
	if err := testutil.WaitFor(timeout, func() bool { return strings.Contains(d.Output(), s) }); err != nil {
		return fmt.Errorf("waiting %v for %q: %w", timeout, s, err)
	}
	return nil
}

// Stop sends sig to the daemon's process group and waits for it to exit.
func (d *Daemon) Stop(sig syscall.Signal, timeout time.Duration) error {
	select {
	case <-d.done:
		return nil
	default:
	}
	syscall.Kill(-d.Cmd.Process.Pid, sig)
	select {
	case <-d.done:
		return nil
	case <-time.After(timeout):
		syscall.Kill(-d.Cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		return fmt.Errorf("%s still running %v after signal %d", d.Cmd.Path, timeout, sig)
	}
}

// ExitCode returns the process's exit code (-1 if killed by a signal or
// still running).
func (d *Daemon) ExitCode() int {
	if d.Cmd.ProcessState == nil {
		return -1
	}
	return d.Cmd.ProcessState.ExitCode()
}

// Done is closed when the daemon exits.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// StartSwitch starts a uml_switch binary (ours or /usr/bin/uml_switch) with
// args, optionally inside network namespace netns (abstract data sockets are
// per namespace, so its guests must run there too), and waits until its
// control socket exists.
func StartSwitch(t testing.TB, bin, netns, ctl string, args ...string) *Daemon {
	t.Helper()
	argv := append([]string{bin, "-unix", ctl}, args...)
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	d := StartDaemon(t, argv...)
	if err := testutil.WaitFor(10*time.Second, func() bool {
		st, err := os.Stat(ctl)
		return err == nil && st.Mode()&os.ModeSocket != 0
	}); err != nil {
		t.Fatalf("%s: control socket %s never appeared: %v\n%s", bin, ctl, err, d.Output())
	}
	return d
}

// BootRealUMLIn is BootRealUML inside network namespace netns ("" = ours).
func BootRealUMLIn(t testing.TB, netns, image string, extra ...string) *Guest {
	t.Helper()
	if netns == "" {
		return BootRealUML(t, image, extra...)
	}
	uml := RealUML(t)
	umlDir := t.TempDir()
	argv := []string{"ip", "netns", "exec", netns, uml, "ubd0=" + image, "mem=64M", "con0=fd:0,fd:1", "con=null",
		"ssl=null", "init=/init", "uml_dir=" + umlDir}
	argv = append(argv, extra...)
	return Start(t, []string{"TMPDIR=" + umlDir}, argv...)
}
