package watchdog

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// DefaultPath is where UML runs the helper from (an absolute path).
const DefaultPath = "/usr/bin/uml_watchdog"

// EnvPath overrides DefaultPath (a umlkit addition).
const EnvPath = "UML_WATCHDOG"

// Start runs uml_watchdog for the machine whose linux process is pid (or,
// with notify, for the mconsole notify socket notify) the way UML's
// harddog driver does, and waits for its ready byte. It returns the
// process and the helper's input, or UML's message on failure.
func Start(pid int, notify string) (*exec.Cmd, *os.File, error) {
	path := DefaultPath
	if p := os.Getenv(EnvPath); p != "" {
		path = p
	}
	args := []string{path, "-pid", strconv.Itoa(pid)}
	if notify != "" {
		args = []string{path, "-mconsole", notify}
	}
	in, inHelper, err := sys.FilePair(unix.SOCK_STREAM, "harddog", "uml_watchdog stdin")
	if err != nil {
		return nil, nil, err
	}
	out, outHelper, err := sys.FilePair(unix.SOCK_STREAM, "harddog-ready", "uml_watchdog stdout")
	if err != nil {
		in.Close()
		inHelper.Close()
		return nil, nil, err
	}
	if p, err := sys.Pollable(out, "harddog-ready"); err == nil {
		out = p // for the ready byte's deadline
	}
	cmd := &exec.Cmd{Path: path, Args: args, Stdin: inHelper, Stdout: outHelper, Stderr: outHelper,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}}
	err = cmd.Start()
	inHelper.Close()
	outHelper.Close()
	defer out.Close()
	if err != nil {
		in.Close()
		return nil, nil, errors.New("harddog_open - run_helper failed, errno = " + strconv.Itoa(int(sys.ErrnoOf(err, syscall.ENOEXEC))))
	}
	ready := make([]byte, 1)
	out.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(out, ready); err != nil {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, errors.New("harddog_open - EOF on watchdog pipe")
	}
	return cmd, in, nil
}
