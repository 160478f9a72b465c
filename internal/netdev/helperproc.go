//go:build linux

package netdev

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// helperProc is a transport's helper process: the vde_plug of an ethN=vde
// device (switch.md §7: like UML, linux does not speak the VDE protocol
// itself but runs vde_plug on one end of a SOCK_SEQPACKET socketpair, one
// frame per message) or the slirp of an ethN=slirp device (eth_slirp.go).
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

// helperPath is UML's helper search path: $PATH + ":/usr/lib//uml" (the
// Debian build's literal double slash), or a default when PATH is empty.
func helperPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p + ":/usr/lib//uml"
	}
	return ":/bin:/usr/bin/:/usr/lib//uml"
}

// LookHelper finds name along helperPath like execvp.
func LookHelper(name string) (string, error) {
	for _, dir := range filepath.SplitList(helperPath()) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("run_helper : failed to exec %s on host: %s", name, unix.ENOENT.Error())
}
