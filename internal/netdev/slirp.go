//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/slip"
	"github.com/umlkit/umlkit/internal/sys"
	"golang.org/x/term"
)

// Slip is the transport of UML's slip and slirp devices: IPv4 packets
// (not Ethernet frames; pair it with a CreateTun device) SLIP-framed over a
// byte stream, the slirp process's stdin and stdout.
type Slip struct {
	f   *os.File
	r   *slip.Reader
	wmu sync.Mutex
	out []byte
}

// NewSlip wraps the stream f (which it owns from now on).
func NewSlip(f *os.File) (*Slip, error) {
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		return nil, err
	}
	return &Slip{f: p, r: slip.NewReader(p)}, nil
}

// ReadFrame implements Transport: the next packet; over-long ones are
// skipped.
func (s *Slip) ReadFrame(b []byte) (int, error) {
	for {
		n, err := s.r.ReadPacket(b)
		if errors.Is(err, slip.ErrTooLong) {
			continue
		}
		return n, err
	}
}

// WriteFrame implements Transport.
func (s *Slip) WriteFrame(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.out = slip.Append(s.out[:0], b)
	_, err := s.f.Write(s.out)
	return err
}

// Close implements Transport.
func (s *Slip) Close() error { return s.f.Close() }

var _ Transport = (*Slip)(nil)

// ethN=slirp,<mac>,<cmd>,<arg>,...: the guest's IPv4 packets go, SLIP
// framed, to a slirp process P runs as the user (net.md §2); the guest's
// ethN is a TUN device (no link layer), as UML's slirp device is.

func init() {
	Register(&Driver{
		Name:  "slirp",
		Help:  "slirp[,<mac>[,<command>[,<argument>...]]] (runs slirp; '_' in a field reads as a space)",
		Parse: parseSlirp,
		Open:  openSlirp,
		Wrap:  func(_ plan.Eth, f *os.File) (Transport, error) { return NewSlip(f) },
		L3:    true,
	})
}

type slirpSpec struct {
	MAC  string
	Argv []string // the command line, '_' already read as ' '
	Cut  bool     // argv was truncated to maxSlirpArgs
}

func (s slirpSpec) Fields() []string {
	f := []string{s.MAC}
	for _, a := range s.Argv {
		f = append(f, strings.ReplaceAll(a, " ", "_"))
	}
	return f
}

func parseSlirp(f []string) (Spec, error) {
	argv, cut := slirpArgv(f[min(1, len(f)):])
	return slirpSpec{MAC: field(f, 0), Argv: argv, Cut: cut}, nil
}

func openSlirp(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(slirpSpec)
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	if s.Cut {
		h.logf("slirp_setup: truncating slirp arguments")
	}
	h.logf("Netdevice %d (%s) : ", n, mac)
	for _, l := range slirpLines(s.Argv) {
		h.logf("%s", l)
	}
	sock, proc, err := startSlirp(h, s.Argv)
	if err != nil {
		return nil, err
	}
	o, err := newOpened(n, "slirp", mac, sock, nil)
	if err != nil {
		proc.Close()
		return nil, err
	}
	o.own(func() { proc.Close() })
	return o, nil
}

// maxSlirpArgs is UML's limit on the slirp command line.
const maxSlirpArgs = 99

// slirpArgv is UML's slirp command line from the fields after the MAC
// (net.md §2): the command (default "slirp") and its arguments, "_" read as
// a space in every field, at most maxSlirpArgs entries.
func slirpArgv(fields []string) (argv []string, truncated bool) {
	if len(fields) == 0 || fields[0] == "" {
		fields = append([]string{"slirp"}, fields[min(1, len(fields)):]...)
	}
	for _, f := range fields {
		if len(argv) == maxSlirpArgs {
			return argv, true
		}
		argv = append(argv, strings.ReplaceAll(f, "_", " "))
	}
	return argv, false
}

// slirpLines are the boot-log lines naming the command, as linux.uml 6.1
// prints them: the heading, then each word on a line of its own.
func slirpLines(argv []string) []string {
	lines := []string{"SLIRP backend - command line:"}
	for _, a := range argv {
		lines = append(lines, fmt.Sprintf(" '%s'", a))
	}
	return lines
}

// startSlirp runs the slirp command (in the host's namespaces, so its
// connections are the user's) with its stdin and stdout on a raw
// pseudo-terminal, and returns the terminal's master: SLIP-framed IPv4
// packets. UML gives slirp a socket pair instead, but Debian's slirp exits
// at once when its input is not a terminal.
func startSlirp(h *Host, argv []string) (*os.File, *helperProc, error) {
	ours, theirs, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("slirp: open pty: %w", err)
	}
	defer theirs.Close()
	if _, err := term.MakeRaw(int(theirs.Fd())); err != nil {
		ours.Close()
		return nil, nil, fmt.Errorf("slirp: raw pty: %w", err)
	}
	path := argv[0]
	if !strings.Contains(path, "/") {
		if path, err = LookHelper(argv[0]); err != nil {
			ours.Close()
			return nil, nil, err
		}
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Stdin: theirs, Stdout: theirs, Stderr: h.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}}
	p, err := startHelperProc(cmd)
	if err != nil {
		ours.Close()
		return nil, nil, fmt.Errorf("run_helper : failed to exec %s on host: %v", argv[0], err)
	}
	return ours, p, nil
}
