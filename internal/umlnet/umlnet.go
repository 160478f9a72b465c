//go:build linux

// Package umlnet is the logic of the setuid-root helper uml_net (protocol
// version 4): it creates and configures host tap devices for UML kernels and
// hands their descriptors back, and maintains the host routes and proxy ARP
// entries for the guest's addresses.
//
// Security model (beyond the real helper, which runs route/arp/ifconfig and
// `bash -c` as root with the caller's environment):
//   - the caller must be root or a member of the helper group (uml-net);
//   - the environment is cleared before anything else and never consulted
//     (the binary re-executes itself with an empty environment so that not
//     even the Go runtime sees GODEBUG and friends);
//     no program is ever executed (netlink and /proc/sys writes only);
//   - every argument is validated (helperproto) before any host change;
//   - add/del/slip down only touch interfaces this helper created for the
//     same real uid, recognised by their interface alias "uml_net uid=N";
//   - once the host work is done, all uids and gids are set to the caller's
//     real ones (dropping root) before the reply is written.
//
// Spec: shared/spec/net.md §4.
package umlnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/helperproto"
	"github.com/umlkit/umlkit/internal/netsetup"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// nSLIP is the SLIP line discipline number (N_SLIP).
const nSLIP = 1

// DefaultGroup is the group whose members may run the helper.
const DefaultGroup = "uml-net"

// GroupFile is the group database read to resolve the group name.
const GroupFile = "/etc/group"

// AliasPrefix starts the alias of every interface the helper creates.
const AliasPrefix = "uml_net uid="

// Config tunes the helper.
type Config struct {
	// Group whose members may run the helper (DefaultGroup if empty).
	Group string
	// Stdin, Stdout, Stderr are fds 0, 1, 2.
	Stdin, Stdout, Stderr *os.File
}

// caller is who ran the helper.
type caller struct {
	ruid, rgid int
}

// Main runs the helper with args (os.Args[1:]) and returns the exit status.
// It must run before any other goroutine uses credentials.
func Main(cfg Config, args []string) int {
	ensureStdFDs()
	os.Clearenv()
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	c := caller{ruid: unix.Getuid(), rgid: unix.Getgid()}
	if err := authorize(c, cfg.Group); err != nil {
		dropPrivileges(c)
		fmt.Fprintf(cfg.Stderr, "uml_net : %v\n", err)
		return 1
	}
	req, err := helperproto.ParseArgv(args)
	if err != nil {
		dropPrivileges(c)
		var ae *helperproto.ArgvError
		errors.As(err, &ae)
		return emitArgvError(cfg, ae)
	}
	h := helper{cfg: cfg, c: c}
	switch {
	case req.Transport == helperproto.TransTuntap && req.Op == "up":
		return h.tuntapUp(req)
	case req.Op == "add" || req.Op == "del":
		return h.changeAddr(req)
	case req.Transport == helperproto.TransEthertap:
		return h.ethertap(req)
	case req.Transport == helperproto.TransSlip:
		return h.slip(req)
	}
	dropPrivileges(c)
	return 1
}

func emitArgvError(cfg Config, ae *helperproto.ArgvError) int {
	switch ae.Stream {
	case helperproto.Stderr:
		io.WriteString(cfg.Stderr, ae.Text)
	case helperproto.Stdout:
		io.WriteString(cfg.Stdout, ae.Text)
	case helperproto.LengthPrefixed:
		cfg.Stdout.Write(helperproto.AppendLengthPrefixed(nil, ae.Text))
	case helperproto.EthertapStatus:
		cfg.Stdout.Write(helperproto.AppendLengthPrefixed([]byte{helperproto.EthertapStatusFail}, ae.Text))
	case helperproto.TuntapDatagram:
		if err := sendTuntap(cfg.Stdout, helperproto.TuntapReply{Text: ae.Text}, nil); err != nil {
			fmt.Fprintf(cfg.Stderr, "sendmsg: %s\n", strerror(err))
			return 1
		}
	}
	return ae.Code
}

// ensureStdFDs opens /dev/null on any of fds 0-2 that is closed, so that
// no descriptor the helper opens can end up as someone's stdio.
func ensureStdFDs() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == unix.EBADF {
			if nfd, err := unix.Open("/dev/null", unix.O_RDWR, 0); err != nil || nfd != fd {
				panic("uml_net: cannot open /dev/null for a closed standard descriptor")
			}
		}
	}
}

// ReexecClean replaces the process with a fresh copy of itself that has an
// empty environment, unless the environment is already empty: the Go
// runtime reads GODEBUG, GOGC, GOMAXPROCS, GOTRACEBACK... before main runs,
// so clearing os.Environ afterwards is not enough for a setuid program. It
// returns only if the environment was empty or the exec failed (then Main
// still clears the environment).
func ReexecClean(argv []string) {
	for _, kv := range os.Environ() {
		// In secure (setuid) mode the runtime itself adds GOTRACEBACK=none.
		if kv != "GOTRACEBACK=none" {
			unix.Exec("/proc/self/exe", argv, []string{})
			return
		}
	}
}

// ErrNotAllowed is returned when the caller is neither root nor in the group.
var ErrNotAllowed = errors.New("permission denied")

func authorize(c caller, group string) error {
	if c.ruid == 0 {
		return nil
	}
	gid, err := lookupGroup(GroupFile, group)
	if err != nil {
		return fmt.Errorf("%w: caller uid %d is not root and group '%s' cannot be resolved: %v", ErrNotAllowed, c.ruid, group, err)
	}
	if c.rgid == gid {
		return nil
	}
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("%w: getgroups: %v", ErrNotAllowed, err)
	}
	for _, g := range groups {
		if g == gid {
			return nil
		}
	}
	return fmt.Errorf("%w: caller uid %d is neither root nor a member of group '%s'", ErrNotAllowed, c.ruid, group)
}

// lookupGroup resolves a group name from a group(5) file.
func lookupGroup(path, name string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			gid, err := strconv.Atoi(f[2])
			if err != nil || gid < 0 {
				return 0, fmt.Errorf("bad gid %q for group %s in %s", f[2], name, path)
			}
			return gid, nil
		}
	}
	return 0, fmt.Errorf("no group %s in %s", name, path)
}

// dropPrivileges sets every gid and uid to the caller's real ones; for a
// non-root caller this clears all capabilities. Failure is fatal: the
// helper must never answer with privileges it should have dropped.
func dropPrivileges(c caller) {
	if err := unix.Setresgid(c.rgid, c.rgid, c.rgid); err != nil {
		panic(fmt.Sprintf("uml_net: dropping group privileges: %v", err))
	}
	if err := unix.Setresuid(c.ruid, c.ruid, c.ruid); err != nil {
		panic(fmt.Sprintf("uml_net: dropping user privileges: %v", err))
	}
}

type helper struct {
	cfg Config
	c   caller
	out strings.Builder // the output text (commands-equivalent log)
}

func (h *helper) alias() string { return AliasPrefix + strconv.Itoa(h.c.ruid) }

func (h *helper) logCmd(argv ...string) { h.out.WriteString(helperproto.CommandLine(argv...)) }

func (h *helper) logErr(err error) { fmt.Fprintf(&h.out, "%s\n", errText(err)) }

// tuntapUp implements `tuntap up <gate>` (spec §4.2).
func (h *helper) tuntapUp(req helperproto.Request) int {
	// Refuse before touching the host if the reply cannot be sent.
	if err := checkSocket(h.cfg.Stdout); err != nil {
		dropPrivileges(h.c)
		fmt.Fprintf(h.cfg.Stderr, "sendmsg: %s\n", strerror(err))
		return 1
	}
	dev, err := tuntap.Open(tuntap.Config{})
	if err != nil {
		fmt.Fprintf(&h.out, "%s\n", errText(err))
		dropPrivileges(h.c)
		return h.replyTuntap(nil)
	}
	defer dev.Close()
	name := dev.Name()
	gate := req.Gate.String()
	if err := netsetup.SetAlias(name, h.alias()); err != nil {
		h.logErr(err)
		dropPrivileges(h.c)
		return h.replyTuntap(nil)
	}
	h.logCmd("ifconfig", name, gate, "netmask", helperproto.HostRouteMask, "up")
	if err := netsetup.AddrUp(name, req.Gate, 32, 0); err != nil {
		h.logErr(err)
		h.out.WriteString(helperproto.FailedStatus("ifconfig"))
		dropPrivileges(h.c)
		return h.replyTuntap(nil)
	}
	h.logCmd("bash", "-c", helperproto.IPForwardCmd)
	if err := (netsetup.Host{}).SetIPForward(true); err != nil {
		h.logErr(err)
	}
	dropPrivileges(h.c)
	return h.replyTuntap(dev)
}

func (h *helper) replyTuntap(dev *tuntap.Device) int {
	r := helperproto.TuntapReply{Text: h.out.String()}
	var f *os.File
	if dev != nil {
		r.Name, f = dev.Name(), dev.File()
	}
	if err := sendTuntap(h.cfg.Stdout, r, f); err != nil {
		fmt.Fprintf(h.cfg.Stderr, "sendmsg: %s\n", strerror(err))
		return 1
	}
	return 0
}

func checkSocket(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket == 0 {
		return unix.ENOTSOCK
	}
	return nil
}

func sendTuntap(out *os.File, r helperproto.TuntapReply, f *os.File) error {
	if err := checkSocket(out); err != nil {
		return err
	}
	b, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	c, err := net.FileConn(out)
	if err != nil {
		return err
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return unix.ENOTSOCK
	}
	if f == nil {
		_, err = uc.Write(b)
		return unwrapOp(err)
	}
	return unwrapOp(fdpass.Send(uc, b, f))
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// owned checks that dev is an interface this helper created for the caller.
func (h *helper) owned(dev string) error {
	alias, err := netsetup.Alias(dev)
	if err != nil {
		return err
	}
	if alias != h.alias() {
		return fmt.Errorf("refusing to touch %s: not created by uml_net for uid %d", dev, h.c.ruid)
	}
	return nil
}

// changeAddr implements add/del <dev> <addr> <netmask> (spec §4.3).
func (h *helper) changeAddr(req helperproto.Request) int {
	code := h.doChangeAddr(req)
	dropPrivileges(h.c)
	h.cfg.Stdout.Write(helperproto.AppendLengthPrefixed(nil, h.out.String()))
	return code
}

func (h *helper) doChangeAddr(req helperproto.Request) int {
	if err := h.owned(req.Dev); err != nil {
		fmt.Fprintf(&h.out, "uml_net : %s\n", errText(err))
		return 1
	}
	if local, err := netsetup.IsLocalAddr(req.Addr); err != nil || local {
		fmt.Fprintf(&h.out, "uml_net : refusing %s: it is an address of this host\n", req.Addr)
		return 1
	}
	addr, dev := req.Addr.String(), req.Dev
	host := netsetup.Host{}
	add := req.Op == "add"
	if add {
		h.logCmd("route", "add", "-host", addr, "dev", dev)
		if err := netsetup.AddHostRoute(dev, req.Addr); err != nil {
			h.logErr(err)
		}
		h.logCmd("bash", "-c", "echo 1 > /proc/sys/"+netsetup.ProxyARPPath(dev))
		if err := host.SetProxyARP(dev, true); err != nil {
			h.logErr(err)
		}
	} else {
		h.logCmd("route", "del", "-host", addr, "dev", dev)
		if err := netsetup.DelHostRoute(dev, req.Addr); err != nil {
			h.logErr(err)
		}
		h.logCmd("bash", "-c", "echo 0 > /proc/sys/"+netsetup.ProxyARPPath(dev))
		if err := host.SetProxyARP(dev, false); err != nil {
			h.logErr(err)
		}
	}
	ifaces, err := netsetup.MatchingRoutes(req.Addr, req.Mask, dev)
	if err != nil {
		h.logErr(err)
		return 0
	}
	for _, ifc := range ifaces {
		if add {
			h.logCmd("arp", "-Ds", addr, ifc, "pub")
			if err := netsetup.PublishARP(ifc, req.Addr); err != nil {
				h.logErr(err)
			}
		} else {
			h.logCmd("arp", "-i", ifc, "-d", addr, "pub")
			if err := netsetup.UnpublishARP(ifc, req.Addr); err != nil {
				h.logErr(err)
			}
		}
	}
	return 0
}

// ethertap answers like the real helper on hosts without ethertap (every
// kernel since 2.6): status byte 0 and the open error.
func (h *helper) ethertap(req helperproto.Request) int {
	dropPrivileges(h.c)
	text := "open: " + strerror(unix.ENXIO) + "\n"
	h.cfg.Stdout.Write(helperproto.AppendLengthPrefixed([]byte{helperproto.EthertapStatusFail}, text))
	return 1
}

// slip implements `slip up <gate>` and `slip down <ifname>` on fd 0, the
// caller's pty slave (spec §4.5).
func (h *helper) slip(req helperproto.Request) int {
	code := h.doSlip(req)
	dropPrivileges(h.c)
	h.cfg.Stdout.Write(helperproto.AppendLengthPrefixed(nil, h.out.String()))
	return code
}

func (h *helper) doSlip(req helperproto.Request) int {
	fd := int(h.cfg.Stdin.Fd())
	if req.Op == "down" {
		name, err := slipName(fd)
		if err != nil {
			fmt.Fprintf(&h.out, "Getting slip line discipline: %s\n", strerror(err))
			return 1
		}
		if name != req.Dev {
			fmt.Fprintf(&h.out, "uml_net : refusing to touch %s: the line on fd 0 is %s\n", req.Dev, name)
			return 1
		}
		if err := h.owned(name); err != nil {
			fmt.Fprintf(&h.out, "uml_net : %s\n", errText(err))
			return 1
		}
		h.logCmd("ifconfig", name, "0.0.0.0", "down")
		if err := netsetup.FlushDown(name); err != nil {
			h.logErr(err)
			h.out.WriteString(helperproto.FailedStatus("ifconfig"))
			return 1
		}
		return 0
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSETD, nSLIP); err != nil {
		fmt.Fprintf(&h.out, "Setting slip line discipline: %s\n", strerror(err))
		return 1
	}
	if err := unix.IoctlSetPointerInt(fd, unix.SIOCSIFENCAP, 0); err != nil {
		fmt.Fprintf(&h.out, "Setting slip encapsulation: %s\n", strerror(err))
		return 1
	}
	name, err := slipName(fd)
	if err != nil {
		fmt.Fprintf(&h.out, "Getting slip line discipline: %s\n", strerror(err))
		return 1
	}
	if err := netsetup.SetAlias(name, h.alias()); err != nil {
		h.logErr(err)
		return 1
	}
	gate := req.Gate.String()
	h.logCmd("ifconfig", name, gate, "mtu", "1500", "up")
	if err := netsetup.AddrUp(name, req.Gate, 32, 1500); err != nil {
		h.logErr(err)
		h.out.WriteString(helperproto.FailedStatus("ifconfig"))
		return 1
	}
	h.logCmd("bash", "-c", helperproto.IPForwardCmd)
	if err := (netsetup.Host{}).SetIPForward(true); err != nil {
		h.logErr(err)
	}
	return 0
}

// slipName asks the SLIP line discipline on fd for its interface name
// (SIOCGIFNAME on a tty).
func slipName(fd int) (string, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return "", err
	}
	name := ifr.Name()
	if helperproto.CheckIfName(name) != nil {
		return "", unix.EINVAL
	}
	return name, nil
}

// errText renders err with its errno in strerror(3) capitalisation.
func errText(err error) string {
	s := err.Error()
	var en unix.Errno
	if errors.As(err, &en) {
		low := en.Error()
		if i := strings.LastIndex(s, low); i >= 0 {
			s = s[:i] + strerror(en) + s[i+len(low):]
		}
	}
	return s
}

func strerror(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		err = en
	}
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
