package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// helperProc is a transport's helper process: the vde_plug of an ethN=vde
// device (switch.md §7: like UML, linux does not speak the VDE protocol
// itself but runs vde_plug on one end of a SOCK_SEQPACKET socketpair, one
// frame per message) or the slirp of an ethN=slirp device (slirp.go).
type helperProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startHelperProc starts cmd and reaps it in the background.
func startHelperProc(cmd *exec.Cmd) (*helperProc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &helperProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// vdeArgv is UML's vde_plug command line for the plug's end at fd.
func vdeArgv(fd int, sw, port, group string, mode uint32, descr string) []string {
	argv := []string{"vde_plug", "--descr", descr}
	if port != "" {
		argv = append(argv, "--port2", port)
	}
	if group != "" {
		argv = append(argv, "--group2", group)
	}
	argv = append(argv, "--mod2", fmt.Sprintf("0%o", mode), fmt.Sprintf("seqpacket://%d", fd), sw)
	return argv
}

// startVdePlug runs vde_plug and returns linux's end of the socketpair.
func (m *machine) startVdePlug(sw, port, group string, mode uint32, descr string) (*os.File, *helperProc, error) {
	ours, theirs, err := filePair(unix.SOCK_SEQPACKET, "vde", "vde_plug")
	if err != nil {
		return nil, nil, err
	}
	argv := vdeArgv(3, sw, port, group, mode, descr)
	path, err := lookHelper(argv[0])
	if err != nil {
		ours.Close()
		theirs.Close()
		return nil, nil, fmt.Errorf("vde_user_init: vde_open failed, errno = %d", int(unix.ENOENT))
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Stderr: m.stdio.Err, ExtraFiles: []*os.File{theirs},
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}}
	p, err := startHelperProc(cmd)
	theirs.Close()
	if err != nil {
		ours.Close()
		errno := unix.ENOEXEC
		if e, ok := err.(*os.PathError); ok {
			if n, ok := e.Err.(syscall.Errno); ok {
				errno = n
			}
		}
		return nil, nil, fmt.Errorf("vde_user_init: vde_open failed, errno = %d", int(errno))
	}
	return ours, p, nil
}

// Close stops the helper (SIGTERM, then SIGKILL after 2 s).
func (p *helperProc) Close() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// parseVdeMode parses the octal mode field (default 0700).
func parseVdeMode(s string) (uint32, error) {
	if s == "" {
		return 0o700, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	return uint32(v), err
}
