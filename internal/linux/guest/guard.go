package guest

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// roleGuard is a small process in the guest's pid namespace that ties the
// guest's life to K's: it blocks reading a pipe whose only write end K
// holds, and when K dies (EOF) it powers the pid namespace off, which kills
// every guest process. (A parent-death signal on the guest's init would be
// simpler, but the kernel clears it at the execs into the guest.)
const roleGuard = "guest-guard"

func init() { childrole.Register(roleGuard, guard) }

func guard() int {
	files, err := childrole.Files()
	if err != nil || files[plan.FDGuestAlive] == nil {
		return 1
	}
	for _, s := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2} {
		ignore(s)
	}
	alive := files[plan.FDGuestAlive]
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(int(alive.Fd()), buf) // blocking by design: this is the process's one job
		if n == 0 || (err != nil && err != unix.EINTR) {
			break
		}
	}
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return 0
}

// startGuard starts the guard with the "alive" fd donated by K.
func startGuard(alive *os.File) error {
	if alive == nil {
		return nil // started without a guard pipe (tests)
	}
	defer alive.Close()
	extra, fdEnv := childrole.Donate(map[string]*os.File{plan.FDGuestAlive: alive}, []string{plan.FDGuestAlive})
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{plan.GuardArgv0}
	cmd.Env = []string{childrole.EnvRole + "=" + roleGuard, fdEnv}
	cmd.ExtraFiles = extra
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start guard: %w", err)
	}
	cmd.Process.Release()
	return nil
}
