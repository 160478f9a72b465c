//go:build linux

package netdev

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
)

// ethN=vde,<switch>,<mac>,<port>,<group>,<mode>,<description>: a port of a
// VDE switch (switch.md §7). Like UML, linux does not speak the VDE
// protocol itself: P runs vde_plug on one end of a SOCK_SEQPACKET
// socketpair, one frame per message, and K reads and writes the other.

func init() {
	Register(&Driver{
		Name:  "vde",
		Help:  "vde[,<switch>[,<mac>[,<port>[,<group>[,<mode>[,<description>]]]]]] (runs vde_plug)",
		Parse: parseVde,
		Open:  openVde,
		Wrap:  wrapFile,
	})
}

type vdeSpec struct {
	Switch, MAC, Port, Group string
	Mode                     uint32
	Descr                    string
}

func (s vdeSpec) Fields() []string {
	return []string{s.Switch, s.MAC, s.Port, s.Group, fmt.Sprintf("%o", s.Mode), s.Descr}
}

func parseVde(f []string) (Spec, error) {
	mode, err := parseVdeMode(field(f, 4))
	if err != nil {
		return nil, fmt.Errorf("vde_setup - Bad mode : '%s'", field(f, 4))
	}
	s := vdeSpec{Switch: field(f, 0), MAC: field(f, 1), Port: field(f, 2), Group: field(f, 3), Mode: mode, Descr: field(f, 5)}
	if s.Descr == "" {
		s.Descr = "UML vde_transport"
	}
	return s, nil
}

func openVde(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vdeSpec)
	shown := s.Switch
	if shown == "" {
		shown = "(default socket)"
	}
	h.logf("Configured vde device: %s", shown)
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	if s.Port != "" {
		h.logf("vde backend - %s, port %s", shown, s.Port)
	} else {
		h.logf("vde backend - %s, ", shown) // as linux.uml 6.1 shows it (verified)
	}
	sock, plug, err := startVdePlug(h, s)
	if err != nil {
		return nil, err
	}
	h.logf("vde backend - connection opened")
	o, err := newOpened(n, "vde", mac, sock, nil)
	if err != nil {
		plug.Close()
		return nil, err
	}
	o.own(func() { plug.Close() })
	return o, nil
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
func startVdePlug(h *Host, s vdeSpec) (*os.File, *helperProc, error) {
	ours, theirs, err := sys.FilePair(unix.SOCK_SEQPACKET, "vde", "vde_plug")
	if err != nil {
		return nil, nil, err
	}
	argv := vdeArgv(3, s.Switch, s.Port, s.Group, s.Mode, s.Descr)
	path, err := LookHelper(argv[0])
	if err != nil {
		ours.Close()
		theirs.Close()
		return nil, nil, fmt.Errorf("vde_user_init: vde_open failed, errno = %d", int(unix.ENOENT))
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Stderr: h.Stderr, ExtraFiles: []*os.File{theirs},
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

// parseVdeMode parses the octal mode field (default 0700).
func parseVdeMode(s string) (uint32, error) {
	if s == "" {
		return 0o700, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	return uint32(v), err
}
