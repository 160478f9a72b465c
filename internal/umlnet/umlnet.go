//go:build linux

// Package umlnet is the logic of the setuid-root helper uml_net (protocol
// version 4): it creates and configures host tap devices for UML kernels and
// hands their descriptors back, and maintains the host routes and proxy ARP
// entries for the guest's addresses.
//
// Security model (beyond the real helper, which runs route/arp/ifconfig and
// `bash -c` as root with the caller's environment and takes any address):
//   - the caller must be root or a member of the helper group (uml-net);
//   - the environment is never seen by privileged code of ours: a process
//     started with a non-empty environment drops to the caller's ids and
//     re-executes itself with an empty one (ReexecClean documents what the
//     Go runtime reads before that); no program other than the helper
//     itself (the watcher) is ever executed (netlink and /proc/sys writes
//     only);
//   - every argument is validated (helperproto) before any host change;
//   - add/del/slip down only touch interfaces this helper created for the
//     same real uid, recognised by their interface alias "uml_net uid=N";
//   - the address policy (policy.go) refuses host, gateway, LAN
//     network/broadcast, in-use LAN and remote addresses as tap or guest
//     addresses, for every caller including root; proxy ARP only for
//     addresses routed to the caller's own tap;
//   - what it changes is recorded per network namespace under StateDir
//     (state.go): ip_forward and each tap's proxy_arp go back to their old
//     values with the last tap / last guest address, and the proxy ARP
//     entries of a tap's guests go with the tap (the watcher, watch.go);
//   - once the host work is done, all uids and gids are set to the caller's
//     real ones (dropping root) before the reply is written; the state lock
//     is never held while a reply may block.
//
// Lock order: the StateDir flock, then a watcher's net-<cookie>.watch
// flock. Spec: shared/spec/net.md §4.
package umlnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/helperproto"
	"github.com/umlkit/umlkit/internal/netsetup"
	"github.com/umlkit/umlkit/internal/sys"
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
	// StateDir overrides StateDir (tests).
	StateDir string
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
	if cfg.StateDir == "" {
		cfg.StateDir = StateDir
	}
	c := caller{ruid: unix.Getuid(), rgid: unix.Getgid()}
	if len(args) == 1 && args[0] == WatchRole && c.ruid == 0 && unix.Geteuid() == 0 {
		return watch(cfg.StateDir, realOps{})
	}
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
			fmt.Fprintf(cfg.Stderr, "sendmsg: %s\n", sys.Strerror(err))
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
// empty environment, unless the environment is already empty. The Go
// runtime reads GODEBUG (before anything else, straight from the process
// stack, even in secure mode), GOGC, GOMEMLIMIT and GOMAXPROCS while it
// starts, before any code of ours; in secure (setuid) mode it only forces
// GOTRACEBACK=none and turns fatal errors into a silent exit(2). So the
// process that saw the caller's environment does nothing but this: it first
// sets every uid and gid to the caller's real ones (dropping root) and then
// executes /proc/self/exe with an empty environment; the setuid bit makes
// the new image root again, and that image's runtime sees no variable at
// all. It returns nil without doing anything when the environment is empty,
// and an error (with the process already unprivileged) when the exec fails.
func ReexecClean(argv []string) error {
	dirty := false
	for _, kv := range os.Environ() {
		// In secure (setuid) mode the runtime itself adds GOTRACEBACK=none.
		if kv != "GOTRACEBACK=none" {
			dirty = true
		}
	}
	if !dirty {
		return nil
	}
	if err := unix.Setresgid(unix.Getgid(), unix.Getgid(), unix.Getgid()); err != nil {
		return fmt.Errorf("drop group privileges before clearing the environment: %s", sys.Strerror(err))
	}
	if err := unix.Setresuid(unix.Getuid(), unix.Getuid(), unix.Getuid()); err != nil {
		return fmt.Errorf("drop user privileges before clearing the environment: %s", sys.Strerror(err))
	}
	// EACCES here: the caller may not execute the helper (04754 and not in
	// its group); the first exec may have been made while the caller still
	// had capabilities (setpriv does that).
	err := unix.Exec("/proc/self/exe", argv, []string{})
	return fmt.Errorf("re-execute with an empty environment: %s", sys.Strerror(err))
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
		fmt.Fprintf(h.cfg.Stderr, "sendmsg: %s\n", sys.Strerror(err))
		return 1
	}
	s, err := h.openStore()
	if err != nil {
		h.refuse(err)
		dropPrivileges(h.c)
		h.replyTuntap(nil)
		return 1
	}
	defer s.close()
	if err := h.checkTapAddr(req.Gate); err != nil {
		h.refuse(err)
		dropPrivileges(h.c)
		h.replyTuntap(nil)
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
	h.forward(s, name)
	s.close() // never hold the lock while the reply may block
	dropPrivileges(h.c)
	return h.replyTuntap(dev)
}

// openStore locks the state of this network namespace and catches up with
// the taps that went away since the last run.
func (h *helper) openStore() (*store, error) {
	s, err := openStore(h.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if s.gc(h.ops()) {
		if err := s.save(); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (h *helper) ops() realOps { return realOps{} }

// checkTapAddr applies the policy to a tap's host-side address.
func (h *helper) checkTapAddr(a netip.Addr) error {
	v, err := netsetup.Snapshot()
	if err != nil {
		return err
	}
	return CheckTapAddr(v, h.alias(), a)
}

// refuse writes a refusal as the helper's one-line error.
func (h *helper) refuse(err error) {
	fmt.Fprintf(&h.out, "uml_net : %s\n", errText(err))
}

// forward records the new interface dev (and ip_forward's value before the
// first one), sets ip_forward and makes sure a watcher will undo both.
func (h *helper) forward(s *store, dev string) {
	idx, err := netsetup.LinkIndex(dev)
	if err == nil {
		s.addTap(h.ops(), tapState{Index: idx, Name: dev, UID: h.c.ruid})
		err = s.save()
	}
	if err != nil {
		h.logErr(fmt.Errorf("record %s: %w", dev, err))
	}
	h.logCmd("bash", "-c", helperproto.IPForwardCmd)
	if err := (netsetup.Host{}).SetIPForward(true); err != nil {
		h.logErr(err)
	}
	if err := spawnWatcher(); err != nil {
		h.logErr(err)
	}
}

func (h *helper) replyTuntap(dev *tuntap.Device) int {
	r := helperproto.TuntapReply{Text: h.out.String()}
	var f *os.File
	if dev != nil {
		r.Name, f = dev.Name(), dev.File()
	}
	if err := sendTuntap(h.cfg.Stdout, r, f); err != nil {
		fmt.Fprintf(h.cfg.Stderr, "sendmsg: %s\n", sys.Strerror(err))
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
		h.refuse(err)
		return 1
	}
	s, err := h.openStore()
	if err != nil {
		h.refuse(err)
		return 1
	}
	defer s.close()
	v, err := netsetup.Snapshot()
	if err != nil {
		h.refuse(err)
		return 1
	}
	add := req.Op == "add"
	if add {
		err = CheckGuestAddr(v, h.alias(), req.Dev, req.Addr)
	} else {
		err = CheckDelAddr(v, h.alias(), req.Dev, req.Addr)
	}
	if err != nil {
		h.refuse(err)
		return 1
	}
	idx, err := netsetup.LinkIndex(req.Dev)
	if err != nil {
		h.refuse(err)
		return 1
	}
	t := s.tap(idx)
	if t == nil { // made before the state existed (or it was lost)
		s.addTap(h.ops(), tapState{Index: idx, Name: req.Dev, UID: h.c.ruid})
		t = s.tap(idx)
	}
	defer func() {
		if err := s.save(); err != nil {
			h.logErr(err)
		}
	}()
	if add {
		return h.addAddr(t, req)
	}
	return h.delAddr(t, req)
}

func (h *helper) addAddr(t *tapState, req helperproto.Request) int {
	addr, dev := req.Addr.String(), req.Dev
	host := netsetup.Host{}
	h.logCmd("route", "add", "-host", addr, "dev", dev)
	if err := netsetup.AddHostRoute(dev, req.Addr); err != nil {
		h.logErr(err)
	}
	// Proxy ARP only for an address that is now routed to this tap.
	if ok, err := netsetup.HasHostRoute(dev, req.Addr); err != nil || !ok {
		h.refuse(&PolicyError{req.Addr, "guest address", "it is not routed to " + dev})
		return 1
	}
	if t.ProxyARP == "" {
		if v, err := host.ReadSysctl(netsetup.ProxyARPPath(dev)); err == nil {
			t.ProxyARP = v
		}
	}
	ga := t.addr(req.Addr)
	if ga == nil {
		t.Addrs = append(t.Addrs, guestAddr{Addr: req.Addr})
		ga = &t.Addrs[len(t.Addrs)-1]
	}
	h.logCmd("bash", "-c", "echo 1 > /proc/sys/"+netsetup.ProxyARPPath(dev))
	if err := host.SetProxyARP(dev, true); err != nil {
		h.logErr(err)
	}
	ifaces, err := netsetup.MatchingRoutes(req.Addr, req.Mask, dev)
	if err != nil {
		h.logErr(err)
		return 0
	}
	for _, ifc := range ifaces {
		h.logCmd("arp", "-Ds", addr, ifc, "pub")
		if err := netsetup.PublishARP(ifc, req.Addr); err != nil {
			h.logErr(err)
			continue
		}
		if idx, err := netsetup.LinkIndex(ifc); err == nil && !hasPub(ga.Pub, ifc) {
			ga.Pub = append(ga.Pub, pubEntry{Dev: ifc, Index: idx})
		}
	}
	return 0
}

func hasPub(pubs []pubEntry, dev string) bool {
	for _, p := range pubs {
		if p.Dev == dev {
			return true
		}
	}
	return false
}

func (h *helper) delAddr(t *tapState, req helperproto.Request) int {
	addr, dev := req.Addr.String(), req.Dev
	host := netsetup.Host{}
	h.logCmd("route", "del", "-host", addr, "dev", dev)
	if err := netsetup.DelHostRoute(dev, req.Addr); err != nil {
		h.logErr(err)
	}
	var recorded []pubEntry
	kept := t.Addrs[:0]
	for _, ga := range t.Addrs {
		if ga.Addr == req.Addr {
			recorded = ga.Pub
			continue
		}
		kept = append(kept, ga)
	}
	t.Addrs = kept
	// proxy_arp goes back to its old value with the tap's last address.
	if len(t.Addrs) == 0 {
		prior := t.ProxyARP
		if prior == "" {
			prior = "0"
		}
		h.logCmd("bash", "-c", "echo "+prior+" > /proc/sys/"+netsetup.ProxyARPPath(dev))
		if err := host.WriteSysctl(netsetup.ProxyARPPath(dev), prior); err != nil {
			h.logErr(err)
		}
		t.ProxyARP = ""
	}
	ifaces, err := netsetup.MatchingRoutes(req.Addr, req.Mask, dev)
	if err != nil {
		h.logErr(err)
	}
	for _, p := range recorded {
		if !contains(ifaces, p.Dev) {
			ifaces = append(ifaces, p.Dev)
		}
	}
	for _, ifc := range ifaces {
		h.logCmd("arp", "-i", ifc, "-d", addr, "pub")
		if err := netsetup.UnpublishARP(ifc, req.Addr); err != nil {
			h.logErr(err)
		}
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ethertap answers like the real helper on hosts without ethertap (every
// kernel since 2.6): status byte 0 and the open error.
func (h *helper) ethertap(req helperproto.Request) int {
	dropPrivileges(h.c)
	text := "open: " + sys.Strerror(unix.ENXIO) + "\n"
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
			fmt.Fprintf(&h.out, "Getting slip line discipline: %s\n", sys.Strerror(err))
			return 1
		}
		if name != req.Dev {
			fmt.Fprintf(&h.out, "uml_net : refusing to touch %s: the line on fd 0 is %s\n", req.Dev, name)
			return 1
		}
		if err := h.owned(name); err != nil {
			h.refuse(err)
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
	s, err := h.openStore()
	if err != nil {
		h.refuse(err)
		return 1
	}
	defer s.close()
	if err := h.checkTapAddr(req.Gate); err != nil {
		h.refuse(err)
		return 1
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSETD, nSLIP); err != nil {
		fmt.Fprintf(&h.out, "Setting slip line discipline: %s\n", sys.Strerror(err))
		return 1
	}
	if err := unix.IoctlSetPointerInt(fd, unix.SIOCSIFENCAP, 0); err != nil {
		fmt.Fprintf(&h.out, "Setting slip encapsulation: %s\n", sys.Strerror(err))
		return 1
	}
	name, err := slipName(fd)
	if err != nil {
		fmt.Fprintf(&h.out, "Getting slip line discipline: %s\n", sys.Strerror(err))
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
	h.forward(s, name)
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

// errText renders err with its errno in sys.Strerror(3) capitalisation.
func errText(err error) string {
	s := err.Error()
	var en unix.Errno
	if errors.As(err, &en) {
		low := en.Error()
		if i := strings.LastIndex(s, low); i >= 0 {
			s = s[:i] + sys.Strerror(en) + s[i+len(low):]
		}
	}
	return s
}
