package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/cmdline"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/ubd"
)

// Disk hot-plug for the mconsole's "config ubdN=..." and "remove ubdN"
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
		return m.ethConfig(arg[len("eth"):])
	}
	return mcserver.Error("configuring this device from the mconsole is not supported by this build")
}

// ubdConfig adds a disk: spec is the text after "ubd".
func (m *machine) ubdConfig(spec string) mcserver.Reply {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	u, err := m.cfg.ConfigUbd(spec)
	if err != nil {
		switch err.Error() {
		case "Device is already configured":
			return mcserver.Errno(syscall.EBUSY, err.Error())
		case "Expected '=' or flag letter (r, s, c, t or d)":
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
	b, _ := json.Marshal(d)
	if _, err := m.ask("ubd-add " + string(b)); err != nil {
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
		return m.ethRemove(arg[len("eth"):])
	}
	if !strings.HasPrefix(arg, "ubd") {
		for _, dev := range []string{"mem", "vec"} {
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
	if _, err := m.ask("ubd-remove " + strconv.Itoa(unit)); err != nil {
		if err.Error() == "busy" {
			return mcserver.Errno(syscall.EBUSY, "Device is currently open")
		}
		return mcserver.Error(err.Error())
	}
	m.cfg.Ubd[unit] = nil
	return mcserver.OK("")
}

// ubdAdd opens and exports disk d and binds it into the running guest (K).
func (k *kernel) ubdAdd(d Disk, init int) error {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	if k.ubd[d.Unit] != nil {
		return errors.New("Device is already configured")
	}
	disk, err := ubd.Open(k.ubdOptions(d))
	if err != nil {
		return err
	}
	name := diskName(d.Unit)
	if k.blocks == nil {
		srv, err := blockfuse.Mount(k.diskDir, map[string]blockfuse.Disk{})
		if err != nil {
			disk.Close()
			return err
		}
		k.blocks = srv
	}
	if err := k.blocks.Add(name, disk); err != nil {
		disk.Close()
		return err
	}
	src := filepath.Join(k.diskDir, name)
	targets := []string{"/dev/" + name, fmt.Sprintf("/dev/ubd/%d", d.Unit)}
	if err := bindIntoGuest(init, src, targets); err != nil {
		unbindFromGuest(init, targets)
		k.blocks.Remove(name)
		disk.Close()
		return fmt.Errorf("ubd%c: %v", 'a'+d.Unit, err)
	}
	k.ubd[d.Unit] = disk
	k.idents[d.Unit] = d.IDs
	return nil
}

// ubdRemove undoes ubdAdd (or removes a boot-time disk) unless the disk is
// open in the guest or holds the root ("busy").
func (k *kernel) ubdRemove(unit, init int) error {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	disk := k.ubd[unit]
	if disk == nil {
		return errors.New("Device doesn't exist")
	}
	if k.plan.Root.Kind == "image" && k.plan.Root.Unit == unit {
		return errors.New("busy")
	}
	name := diskName(unit)
	if err := k.blocks.Remove(name); err != nil {
		if errors.Is(err, blockfuse.ErrBusy) {
			return errors.New("busy")
		}
		return err
	}
	unbindFromGuest(init, []string{"/dev/" + name, fmt.Sprintf("/dev/ubd/%d", unit)})
	delete(k.ubd, unit)
	delete(k.idents, unit)
	if err := disk.Flush(); err != nil {
		k.logf("ubd: flush: %v", err)
	}
	return disk.Close()
}

// bindIntoGuest binds the file src (a path in K's mount namespace) onto
// each guest path in targets, creating the guest files first.
func bindIntoGuest(init int, src string, targets []string) error {
	for _, t := range targets {
		tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("open_tree "+src, err)
		}
		err = mountemu.InGuest(init, func() error {
			if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			f.Close()
			if err := unix.MoveMount(tree, "", unix.AT_FDCWD, t, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return os.NewSyscallError("move_mount "+t, err)
			}
			return nil
		})
		unix.Close(tree)
		if err != nil {
			return err
		}
	}
	return nil
}

// unbindFromGuest detaches and removes the guest paths bindIntoGuest made.
func unbindFromGuest(init int, targets []string) {
	mountemu.InGuest(init, func() error {
		for _, t := range targets {
			unix.Unmount(t, unix.MNT_DETACH)
			os.Remove(t)
		}
		return nil
	})
}

// ethTransports are the transport names UML's eth driver knows; a config
// naming another one is answered with an empty error.
var ethTransports = []string{"daemon", "tuntap", "mcast", "ucast", "vde", "pcap", "ethertap", "slip", "slirp", "vector"}

// ethConfig adds ethN=SPEC to the running machine: rest is the text after
// "eth". As in UML, a known transport whose host side fails is answered OK
// and the failure is in the kernel log only.
func (m *machine) ethConfig(rest string) mcserver.Reply {
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end == 0 {
		return mcserver.Errno(syscall.EINVAL, "Bad device number")
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return mcserver.Errno(syscall.EINVAL, "Bad device number")
	}
	if end == len(rest) || rest[end] != '=' {
		return mcserver.Errno(syscall.EINVAL, "Expected '=' after device number")
	}
	spec := rest[end+1:]
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	if _, ok := m.cfg.Eth[n]; ok {
		return mcserver.Errno(syscall.EINVAL, "Device already configured")
	}
	transport, _, _ := strings.Cut(spec, ",")
	known := false
	for _, t := range ethTransports {
		known = known || t == transport
	}
	if !known {
		return mcserver.Error("")
	}
	e, err := m.openEth(m.net, n, spec)
	if err != nil {
		m.logf("%v", err)
		return mcserver.OK("")
	}
	if e == nil {
		return mcserver.Error("")
	}
	name := fmt.Sprintf("eth%d", n)
	b, _ := json.Marshal(e)
	if _, err := m.askWith("eth-add "+string(b), m.net.files[name]); err != nil {
		m.logf("%s: %v", name, err)
		m.net.drop(name)
		return mcserver.OK("")
	}
	if m.cfg.Eth == nil {
		m.cfg.Eth = map[int]string{}
	}
	m.cfg.Eth[n] = spec
	m.hotEth[n] = true
	return mcserver.OK("")
}

// ethRemove takes ethN away unless the guest has it up.
func (m *machine) ethRemove(rest string) mcserver.Reply {
	n, err := strconv.ParseUint(rest, 0, 31)
	if err != nil {
		return mcserver.Error("Couldn't parse device number")
	}
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	name := fmt.Sprintf("eth%d", n)
	if _, err := m.ask("eth-remove " + strconv.Itoa(int(n))); err != nil {
		switch err.Error() {
		case "busy":
			return mcserver.Errno(syscall.EBUSY, "Device is currently open")
		case "Device doesn't exist":
			return mcserver.Errno(syscall.ENODEV, "Device doesn't exist")
		}
		return mcserver.Error(err.Error())
	}
	m.net.drop(name)
	delete(m.cfg.Eth, int(n))
	delete(m.hotEth, int(n))
	return mcserver.OK("")
}

// resetHotplug undoes the mconsole's device changes before a reboot: the
// next boot has the command line's devices, as with UML.
func (m *machine) resetHotplug(bootUbd [len(cmdline.Config{}.Ubd)]*cmdline.Ubd) {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	m.cfg.Ubd = bootUbd
	for n := range m.hotEth {
		m.net.drop(fmt.Sprintf("eth%d", n))
		delete(m.cfg.Eth, n)
	}
	m.hotEth = map[int]bool{}
}
