package host

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/umlkit/umlkit/internal/cmdline"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
	"github.com/umlkit/umlkit/internal/netdev"
)

// plan.Disk hot-plug for the mconsole's "config ubdN=..." and "remove ubdN"
// (spec/mconsole.md §4.1, §4.2). P parses and checks the request with the
// command line's rules and keeps the configuration; K opens the disk
// through the ubd driver, adds it to the FUSE export and binds it onto
// /dev/ubdX and /dev/ubd/N in the running guest (or undoes all of that).
// Like UML, a hot-plugged disk does not survive a reboot: the next boot
// uses the command line's disks.

// configSet serves "config DEV...=SPEC" (P side).
func (m *machine) configSet(arg string) mcserver.Reply {
	if strings.HasPrefix(arg, "ubd") {
		return m.ubdConfig(arg[len("ubd"):])
	}
	if strings.HasPrefix(arg, "eth") {
		return m.devConfig(false, arg[len("eth"):])
	}
	if strings.HasPrefix(arg, "vec") {
		return m.devConfig(true, arg[len("vec"):])
	}
	return mcserver.Error("configuring this device from the mconsole is not supported by this build")
}

// ubdConfig adds a disk: spec is the text after "ubd".
func (m *machine) ubdConfig(spec string) mcserver.Reply {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	u, err := m.cfg.ConfigUbd(spec)
	if err != nil {
		switch {
		case errors.Is(err, cmdline.ErrUbdConfigured):
			return mcserver.Errno(syscall.EBUSY, err.Error())
		case errors.Is(err, cmdline.ErrUbdFlag):
			return mcserver.Errno(syscall.EINVAL, err.Error())
		}
		return mcserver.Error(err.Error())
	}
	if u == nil { // ubd=sync
		return mcserver.OK("")
	}
	d, err := diskFromUbd(u)
	if err != nil {
		m.cfg.Ubd[u.Unit] = nil
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return mcserver.Errno(errno, "Couldn't determine size of device's file")
		}
		return mcserver.Error(err.Error())
	}
	if d.IsDir {
		m.cfg.Ubd[u.Unit] = nil
		return mcserver.Errno(syscall.EISDIR, "Couldn't determine size of device's file")
	}
	if m.ids != nil {
		if err := m.allowDisk(&d, true); err != nil {
			m.cfg.Ubd[u.Unit] = nil
			return mcserver.Error(err.Error())
		}
	}
	if _, err := m.ask(plan.Request{Op: plan.OpUbdAdd, Disk: &d}); err != nil {
		m.cfg.Ubd[u.Unit] = nil
		return mcserver.Error(err.Error())
	}
	return mcserver.OK("")
}

// remove serves "remove DEVN" (P side).
func (m *machine) remove(arg string) mcserver.Reply {
	if strings.HasPrefix(arg, "con") || strings.HasPrefix(arg, "ssl") {
		return m.lineRemove(arg)
	}
	if strings.HasPrefix(arg, "eth") {
		return m.devRemove(false, arg[len("eth"):])
	}
	if strings.HasPrefix(arg, "vec") {
		return m.devRemove(true, arg[len("vec"):])
	}
	if !strings.HasPrefix(arg, "ubd") {
		for _, dev := range []string{"mem"} {
			if strings.HasPrefix(arg, dev) {
				return mcserver.Error("removing this device from the mconsole is not supported by this build")
			}
		}
		return mcserver.Error("Bad remove option")
	}
	rest := arg[len("ubd"):]
	unit := -1
	// The kernel's parse_unit: a number, or one letter (the rest ignored).
	if rest != "" && rest[0] >= 'a' && rest[0] <= 'z' {
		unit = int(rest[0] - 'a')
	} else if n, err := strconv.ParseUint(rest, 0, 31); err == nil {
		unit = int(n)
	} else {
		return mcserver.Error("Couldn't parse device number")
	}
	if unit > 15 {
		return mcserver.Error("Invalid device number - must be between 0 and 15")
	}
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	if m.cfg.Ubd[unit] == nil {
		return mcserver.Errno(syscall.ENODEV, "Device doesn't exist")
	}
	if _, err := m.ask(plan.Request{Op: plan.OpUbdRemove, Unit: unit}); err != nil {
		if errors.Is(err, plan.ErrBusy) {
			return mcserver.Errno(syscall.EBUSY, "Device is currently open")
		}
		return mcserver.Error(err.Error())
	}
	m.cfg.Ubd[unit] = nil
	return mcserver.OK("")
}

// devConfig adds ethN=SPEC (vector false; rest is the text after "eth")
// or vecN:SPEC (vector; after "vec") to the running machine. As in UML, a
// known transport whose host side fails is answered OK and the failure is
// in the kernel log only.
func (m *machine) devConfig(vector bool, rest string) mcserver.Reply {
	n, spec, reply := devNumber(vector, rest)
	if reply != nil {
		return *reply
	}
	if vector {
		if _, err := netdev.ParseVecArgs(spec); err != nil {
			return mcserver.Errno(syscall.EINVAL, "vector_config failed to parse parameters")
		}
	}
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	specs := m.devSpecs(vector)
	if _, ok := (*specs)[n]; ok {
		return mcserver.Errno(syscall.EINVAL, "Device already configured")
	}
	if transport, _ := netdev.SplitSpec(spec); !vector && netdev.Lookup(transport) == nil {
		return mcserver.Error("") // UML's answer for a transport it does not know
	}
	e, err := m.openDev(m.net, vector, n, spec)
	if err != nil {
		m.logf("%v", err)
		return mcserver.OK("")
	}
	if e == nil {
		return mcserver.Error("")
	}
	name := e.Name()
	if o := m.net.devs[name]; o.KernelPathTarget() != "" && m.ids != nil {
		m.wantKernelPath(o)
		if e.KPath {
			e.KPath = m.hotKernelPath(o)
		}
	}
	if _, err := m.askWith(plan.Request{Op: plan.OpEthAdd, Eth: e}, m.net.devs[name].Files()...); err != nil {
		m.logf("%s: %v", name, err)
		m.net.drop(name)
		return mcserver.OK("")
	}
	if *specs == nil {
		*specs = map[int]string{}
	}
	(*specs)[n] = spec
	m.hotEth[name] = true
	return mcserver.OK("")
}

// hotKernelPath builds the kernel data path of hot-plugged device o into
// the running K's namespace; false: K relays the device.
func (m *machine) hotKernelPath(o *netdev.Opened) bool {
	m.mu.Lock()
	kpid := m.kpid
	m.mu.Unlock()
	if kpid == 0 {
		return false
	}
	ns, err := kernelNetNS(kpid)
	if err != nil {
		m.logf("%s: kernel data path: %v; frames are relayed by linux", o.Eth.Name(), err)
		return false
	}
	defer ns.Close()
	return m.joinKernelPath(o, ns)
}

// devNumber splits "N=SPEC" (eth) or "N:SPEC" (vector) with UML's
// answers for a bad one: eth's parser reads the digits, the vector
// parser the whole text before the ':'.
func devNumber(vector bool, rest string) (int, string, *mcserver.Reply) {
	bad := func(msg string) (int, string, *mcserver.Reply) {
		r := mcserver.Errno(syscall.EINVAL, msg)
		return 0, "", &r
	}
	if vector {
		num, spec, ok := strings.Cut(rest, ":")
		if !ok {
			return bad("Expected ':' after device number")
		}
		n, err := strconv.ParseUint(num, 0, 31)
		if err != nil {
			return bad("Bad device number")
		}
		return int(n), spec, nil
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if end == 0 || err != nil {
		return bad("Bad device number")
	}
	if end == len(rest) || rest[end] != '=' {
		return bad("Expected '=' after device number")
	}
	return n, rest[end+1:], nil
}

// devSpecs is the command line's map of eth (or vector) devices.
func (m *machine) devSpecs(vector bool) *map[int]string {
	if vector {
		return &m.cfg.Vec
	}
	return &m.cfg.Eth
}

// devRemove takes ethN or vecN away (rest: the text after "eth"/"vec")
// unless the guest has it up.
func (m *machine) devRemove(vector bool, rest string) mcserver.Reply {
	n, err := strconv.ParseUint(rest, 0, 31)
	if err != nil {
		return mcserver.Error("Couldn't parse device number")
	}
	name := plan.DevName(vector, int(n))
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	if _, err := m.ask(plan.Request{Op: plan.OpEthRemove, Arg: name}); err != nil {
		switch {
		case errors.Is(err, plan.ErrBusy):
			return mcserver.Errno(syscall.EBUSY, "Device is currently open")
		case errors.Is(err, plan.ErrNoDevice):
			return mcserver.Errno(syscall.ENODEV, "Device doesn't exist")
		}
		return mcserver.Error(err.Error())
	}
	m.net.drop(name)
	delete(*m.devSpecs(vector), int(n))
	delete(m.hotEth, name)
	return mcserver.OK("")
}

// resetHotplug undoes the mconsole's device changes before a reboot: the
// next boot has the command line's devices, as with UML.
func (m *machine) resetHotplug(bootUbd [len(cmdline.Config{}.Ubd)]*cmdline.Ubd) {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	m.cfg.Ubd = bootUbd
	for name := range m.hotEth {
		o := m.net.devs[name]
		m.net.drop(name)
		if o != nil {
			delete(*m.devSpecs(o.Eth.Vector), o.Eth.Unit)
		}
	}
	m.hotEth = map[string]bool{}
}
