package harness

import (
	"os/exec"
	"syscall"
	"testing"
)

// StartCmd starts a prepared command (extra fds, a custom environment) as a
// Guest: its own process group, stdin a pipe held open, stdout and stderr
// captured, killed at cleanup if still running.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Guest {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	return startCmd(t, cmd)
}

// Close closes the client's connection (a user leaving telnet).
func (tn *Telnet) Close() error { return tn.conn.Close() }
