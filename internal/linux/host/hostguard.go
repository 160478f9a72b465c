package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// The guard of a root-run machine. The guest's pid namespace must end when
// K does (kill -9 of linux included): a process inside it waits for K to
// exit and then powers the namespace off (reboot(2) there kills every
// guest process). Run as an ordinary user, G starts that process itself
// (internal/linux/guest, guard.go) and guest root could kill it. Run as root,
// P starts it instead, with host root's credentials: it joins the guest's
// pid namespace (setns, then the process it starts is born there), so it
// shows in the guest's ps, but no guest process may signal, trace or take
// fds from it (its user namespace is the host's). It watches K through a
// pidfd.

const (
	roleGuardOuter = "guard-outer" // setns into the guest's pid namespace, start roleGuardNS there
	roleGuardNS    = "guard-ns"    // in the guest's pid namespace: wait for K, power off
)

func init() {
	childrole.Register(roleGuardOuter, guardOuterMain)
	childrole.Register(roleGuardNS, guardNSMain)
}

// startHostGuard is P's answer to K's "guard pid=N" (N: guest init's pid).
func (m *machine) startHostGuard(initPid int) error {
	m.hostMu.Lock()
	kpid := m.readyPid
	m.hostMu.Unlock()
	if kpid == 0 {
		return errors.New("the kernel is not running")
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/pid", initPid))
	if err != nil {
		return err
	}
	defer ns.Close()
	pfd, err := unix.PidfdOpen(kpid, 0)
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	kf := os.NewFile(uintptr(pfd), "kernel-pidfd")
	defer kf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	extra, fdEnv := childrole.Donate(map[string]*os.File{"pidns": ns, "kernel": kf}, []string{"pidns", "kernel"})
	cmd := exec.Command(self)
	cmd.Args = []string{plan.GuardArgv0}
	cmd.Env = []string{childrole.EnvRole + "=" + roleGuardOuter, fdEnv}
	cmd.ExtraFiles = extra
	cmd.Dir = "/"
	// The outer process stays the guard's parent and reaps it (a guard
	// left to whatever subreaper adopts it would, as an unreaped zombie,
	// hold the guest's pid namespace open at poweroff); P reaps the outer.
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr childrole.Output
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start guard: %w", err)
	}
	ready := make([]byte, 2)
	n, _ := io.ReadFull(out, ready)
	go cmd.Wait()
	if n != 2 || string(ready) != "ok" {
		return fmt.Errorf("start guard: %s", strings.TrimSpace(stderr.String()))
	}
	// G waits for this reply before it execs the guest's init: every
	// guest process is born in the guest's cgroup, and the guest needs no
	// write access to its parent's cgroup.procs (which would let it move
	// itself out of the freezer).
	if m.cg != nil {
		if err := os.WriteFile(m.cg.guest+"/cgroup.procs", []byte(strconv.Itoa(initPid)), 0o644); err != nil {
			return fmt.Errorf("move the guest into %s: %w", m.cg.guest, err)
		}
	}
	return nil
}

// guardOuterMain joins the guest's pid namespace for its children, starts
// the guard there, says "ok" on stdout, and waits to reap the guard.
func guardOuterMain() int {
	files, err := childrole.Files()
	if err != nil || files["pidns"] == nil || files["kernel"] == nil {
		fmt.Fprintln(os.Stderr, "guard: missing fds")
		return 1
	}
	runtime.LockOSThread() // the pid namespace for children is this thread's
	if err := unix.Setns(int(files["pidns"].Fd()), unix.CLONE_NEWPID); err != nil {
		fmt.Fprintf(os.Stderr, "guard: setns pid: %v\n", err)
		return 1
	}
	files["pidns"].Close()
	extra, fdEnv := childrole.Donate(map[string]*os.File{"kernel": files["kernel"]}, []string{"kernel"})
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{plan.GuardArgv0}
	cmd.Env = []string{childrole.EnvRole + "=" + roleGuardNS, fdEnv}
	cmd.ExtraFiles = extra
	cmd.Dir = "/"
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "guard: %v\n", err)
		return 1
	}
	os.Stdout.WriteString("ok")
	os.Stdout.Close()
	cmd.Wait() // reap the guard when the guest's namespace ends
	return 0
}

// guardNSMain waits for K to exit, then powers the guest's pid namespace
// off.
func guardNSMain() int {
	files, err := childrole.Files()
	if err != nil || files["kernel"] == nil {
		return 1
	}
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	pfd := []unix.PollFd{{Fd: int32(files["kernel"].Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, -1) // blocking by design: this is the process's one job
		if n > 0 || (err != nil && err != unix.EINTR) {
			break
		}
	}
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return 0
}
