package host

// Consoles and serial lines (shared/spec/channels.md §1-§4).
//
// P (this file's machine methods) decides which lines exist from conN=,
// con=, sslN=, ssl= and the defaults, binds one listener per port:P (the
// host's network namespace is P's), and donates every host fd an fd:N
// channel names. K (kside/console_k.go) gives each line a pty pair from a
// private devpts instance; the slave is bound onto the guest's /dev/ttyN or
// /dev/ttySN (plan.Guest.Devices) and K keeps the master. A master
// polls POLLHUP while no guest process has the slave open, so one watcher
// goroutine polls the masters of closed lines every watchInterval; when a
// line opens, K opens its host channels (as UML opens them when the guest
// opens the tty) and two pumps copy guest->host (until the master reads EIO:
// the guest closed the line) and host->guest; then the channels are closed
// and the line is watched again.
//
// con0 is the console: it keeps K's console pty (kside/kside.go) (/dev/console and
// /dev/tty0). With the default fd:0,fd:1 nothing here is involved; any
// other con0 spec is opened at boot (a port or xterm console waits for its
// terminal, as UML's boot does) and becomes K's console input and output.
//
// Differences from UML: the guest's open of a port or xterm line does not
// block (output waits in the pty until the terminal arrives); a legacy pty
// line's open succeeds (the line then discards output) after printing UML's
// failure line; con1-15 default to none without UML's 15 parse failures.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/chanspec"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
)

const (
	numCon = 16
	numSsl = 64

	defaultSsl = "pty"
)

// ---------------------------------------------------------------- P side

// hostConsoles holds P's side of the lines for the whole run: the plan,
// the donated fds and the port listeners.
type hostConsoles struct {
	plan      plan.Consoles
	files     map[string]*os.File
	listeners []*net.TCPListener

	mu      sync.Mutex // guards setSpecs
	setSpec []string   // specs given by mconsole config since boot
}

// ttyDevices lists the host tty devices the lines name (at boot or by
// mconsole config): the only ones P opens for a root-run K.
func (h *hostConsoles) ttyDevices() []string {
	h.mu.Lock()
	specs := append([]string(nil), h.setSpec...)
	h.mu.Unlock()
	for _, l := range h.plan.Lines {
		specs = append(specs, l.Spec)
	}
	var out []string
	for _, spec := range specs {
		if p, err := chanspec.Parse(spec); err == nil {
			for _, c := range []chanspec.Chan{p.In, p.Out} {
				if c.Kind == chanspec.Tty {
					out = append(out, c.Dev)
				}
			}
		}
	}
	return out
}

// lineSpec is the spec of a line by UML's precedence: conN= beats con=
// beats the default (con0 fd:0,fd:1; con1-15 none, see the package notes;
// ssl pty).
func (m *machine) lineSpec(serial bool, n int) string {
	if serial {
		if v, ok := m.cfg.Ssl[n]; ok {
			return v
		}
		if m.cfg.SslAll != "" {
			return m.cfg.SslAll
		}
		return defaultSsl
	}
	if v, ok := m.cfg.ConsoleSpec(n); ok {
		return v
	}
	return chanspec.None
}

// setupConsoles builds the line plan, binds the ports and collects the
// host fds the channels name. Failures are logged as UML logs them; the
// line then fails when the guest opens it.
func (m *machine) setupConsoles() *hostConsoles {
	h := &hostConsoles{files: map[string]*os.File{}}
	h.plan.Quiet = m.cfg.Quiet
	if m.dir != nil {
		h.plan.Umid = m.dir.Umid
	}
	xt := strings.SplitN(m.cfg.Xterm, ",", 3)
	for i := range xt {
		if m.cfg.Xterm != "" {
			h.plan.Xterm[i] = xt[i]
		}
	}
	fds, ports := map[int]bool{}, map[int]bool{}
	add := func(serial bool, n int) {
		spec := m.lineSpec(serial, n)
		_, given := m.cfg.Con[n]
		if chanspec.IsNone(spec) && !serial && n > 0 && !given && m.cfg.ConAll == "" {
			return // our default for con1-15 (see the notes above)
		}
		h.plan.Lines = append(h.plan.Lines, plan.Line{Serial: serial, N: n, Spec: spec})
		p, err := chanspec.Parse(spec)
		if err != nil {
			return // K reports it at every boot
		}
		for _, c := range []chanspec.Chan{p.In, p.Out} {
			switch c.Kind {
			case chanspec.FD:
				fds[c.FD] = true
			case chanspec.Port:
				ports[c.Port] = true
			}
		}
	}
	for n := range numCon {
		add(false, n)
	}
	for n := range numSsl {
		add(true, n)
	}
	for _, fd := range sortedKeys(fds) {
		if f := m.hostFD(fd); f != nil {
			h.files[fmt.Sprintf("hostfd-%d", fd)] = f
			h.plan.FDs = append(h.plan.FDs, fd)
		}
	}
	for _, port := range sortedKeys(ports) {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: port})
		if err != nil {
			var errno syscall.Errno
			errors.As(err, &errno)
			m.logf("binding to port %d failed, errno = %d", port, int(errno))
			continue
		}
		f, err := ln.File()
		if err != nil {
			ln.Close()
			continue
		}
		h.listeners = append(h.listeners, ln)
		h.files[fmt.Sprintf("port-%d", port)] = f
		h.plan.Ports = append(h.plan.Ports, port)
	}
	return h
}

// hostFD returns a file for host fd n of this process: our stdio files for
// 0-2 (stdin is what the console reads), a dup of the inherited fd
// otherwise; nil when n is not open.
func (m *machine) hostFD(n int) *os.File {
	switch n {
	case 0:
		if m.stdio.In != nil {
			return m.stdio.In
		}
	case 1:
		if f, ok := m.stdio.Out.(*os.File); ok {
			return f
		}
	case 2:
		if f, ok := m.stdio.Err.(*os.File); ok {
			return f
		}
	}
	d, err := unix.FcntlInt(uintptr(n), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(d), fmt.Sprintf("hostfd-%d", n))
}

func sortedKeys(m map[int]bool) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

// donate adds the console files to files and their names to order.
func (h *hostConsoles) donate(files map[string]*os.File, order []string) []string {
	if h == nil {
		return order
	}
	names := make([]string, 0, len(h.files))
	for name, f := range h.files {
		files[name] = f
		names = append(names, name)
	}
	sort.Strings(names)
	return append(order, names...)
}

// Close releases the listeners and dups.
func (h *hostConsoles) Close() {
	if h == nil {
		return
	}
	for _, ln := range h.listeners {
		ln.Close()
	}
	for name, f := range h.files {
		if name != "hostfd-0" && name != "hostfd-1" && name != "hostfd-2" {
			f.Close()
		}
	}
}

// configured returns the configured spec of a line for a config query made
// while K is not running, and whether the line exists.
func (h *hostConsoles) configured(name string) string {
	if h != nil {
		for _, l := range h.plan.Lines {
			if l.Name() == name {
				if _, err := chanspec.Parse(l.Spec); err == nil {
					if l.Spec == chanspec.DefaultCon0 && l.Name() == "con0" {
						return l.Spec // the console is open from boot
					}
					return chanspec.Stored(l.Spec)
				}
			}
		}
	}
	return chanspec.None
}

func (m *machine) lineConfigQuery(arg string) mcserver.Reply {
	prefix, num := arg[:3], arg[3:]
	max := numCon
	if prefix == "ssl" {
		max = numSsl
	}
	if num, spec, ok := strings.Cut(num, "="); ok {
		return m.lineConfigSet(prefix, num, spec, max)
	}
	n, err := strconv.ParseUint(num, 0, 32)
	if err != nil {
		return mcserver.Error("line_get_config failed to parse device number")
	}
	if int(n) >= max {
		return mcserver.Error("device number out of range")
	}
	name := fmt.Sprintf("%s%d", prefix, n)
	if ans, err := m.ask(plan.Request{Op: plan.OpLine, Arg: name}); err == nil {
		return mcserver.OK(ans)
	}
	return mcserver.OK(m.cons.configured(name))
}

// lineConfigSet is `config conN=SPEC` (SPEC none: the line is removed).
func (m *machine) lineConfigSet(prefix, num, spec string, max int) mcserver.Reply {
	if num == "" {
		return mcserver.Errno(syscall.EINVAL, "Can't configure all devices from mconsole")
	}
	n, err := strconv.ParseUint(num, 0, 32)
	if err != nil {
		return mcserver.Errno(syscall.EINVAL, "Couldn't parse device number")
	}
	if int(n) >= max {
		return mcserver.Errno(syscall.EINVAL, "Device number out of range")
	}
	return m.askLineSet(fmt.Sprintf("%s%d", prefix, n), spec, "Device is already open")
}

// lineRemove is `remove conN` / `remove sslN`.
func (m *machine) lineRemove(arg string) mcserver.Reply {
	prefix, num := arg[:3], arg[3:]
	max := numCon
	if prefix == "ssl" {
		max = numSsl
	}
	n, err := strconv.ParseUint(num, 0, 32)
	if err != nil {
		return mcserver.Error("Couldn't parse device number")
	}
	if int(n) >= max {
		return mcserver.Error("Device number out of range") // linux.uml 6.1's answer (the line driver's)
	}
	return m.askLineSet(fmt.Sprintf("%s%d", prefix, n), chanspec.None, "Device is currently open")
}

func (m *machine) askLineSet(name, spec, busy string) mcserver.Reply {
	if m.cons != nil {
		m.cons.mu.Lock()
		m.cons.setSpec = append(m.cons.setSpec, spec)
		m.cons.mu.Unlock()
	}
	_, err := m.ask(plan.Request{Op: plan.OpLineSet, Arg: name, Spec: spec})
	switch {
	case err == nil:
		return mcserver.OK("")
	case errors.Is(err, plan.ErrBusy):
		return mcserver.Errno(syscall.EBUSY, busy)
	case errors.Is(err, plan.ErrParse):
		return mcserver.Errno(syscall.EPERM, chanspec.ErrParse.Error())
	}
	return mcserver.Error(err.Error())
}

// lineSet is K's side of a config change: "" on success, "busy" when the
// guest has the line open, "parse" for a bad spec, else a message.
