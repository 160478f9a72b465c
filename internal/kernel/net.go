package kernel

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/netdev"
	"github.com/umlkit/umlkit/internal/switchproto"
)

// EthPlan is one eth device: P opened its host side (in the host's network
// namespace, where abstract sockets and host taps live) and donates the
// descriptor as "ethN"; K creates the TAP ethN in the guest's namespace and
// relays frames (shared/spec/net.md, architecture.md "Network").
type EthPlan struct {
	Unit   int       `json:"unit"`
	MAC    ether.MAC `json:"mac"`
	Kind   string    `json:"kind"`             // "daemon", "tuntap", "mcast", "ucast", "vde"
	Switch []byte    `json:"switch,omitempty"` // daemon: the switch's data address
	Group  string    `json:"group,omitempty"`  // mcast: group address; ucast: peer address
	Port   int       `json:"port,omitempty"`   // mcast: group port; ucast: peer port
}

// hostNet holds the host sides P opened; they live across reboots.
type hostNet struct {
	files   map[string]*os.File // the descriptor K gets, by device name
	closers map[string][]func() // what closes a device's host side, by name
	hooks   []addrHook          // tuntap devices made by uml_net (umlnet.go)
}

// own records a host-side resource of device name, closed with it.
func (h *hostNet) own(name string, c func()) {
	if h.closers == nil {
		h.closers = map[string][]func(){}
	}
	h.closers[name] = append(h.closers[name], c)
}

// drop closes the host side of one device (mconsole remove).
func (h *hostNet) drop(name string) {
	for _, c := range h.closers[name] {
		c()
	}
	delete(h.closers, name)
	delete(h.files, name)
}

// addrHooks returns the devices whose address changes run uml_net hooks.
func (h *hostNet) addrHooks() []addrHook {
	if h == nil {
		return nil
	}
	return h.hooks
}

func (h *hostNet) Close() {
	for name := range h.closers {
		h.drop(name)
	}
}

// donate adds the eth descriptors to files and their names to order.
func (h *hostNet) donate(files map[string]*os.File, order []string) []string {
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

// setupNet parses every ethN= of the command line the way UML's eth_init
// does, prints UML's boot lines, opens the host side of each device it can
// build and records it in the plan. Failures are logged and skip the device.
func (m *machine) setupNet() *hostNet {
	h := &hostNet{files: map[string]*os.File{}, closers: map[string][]func(){}}
	units := make([]int, 0, len(m.cfg.Eth))
	for n := range m.cfg.Eth {
		units = append(units, n)
	}
	sort.Ints(units)
	for _, n := range units {
		if e, err := m.openEth(h, n, m.cfg.Eth[n]); err != nil {
			m.logf("%v", err)
		} else if e != nil {
			m.plan.Eth = append(m.plan.Eth, *e)
		}
	}
	vecs := make([]int, 0, len(m.cfg.Vec))
	for n := range m.cfg.Vec {
		vecs = append(vecs, n)
	}
	sort.Ints(vecs)
	for _, n := range vecs {
		m.logf("%s", vecUnsupported(n, m.cfg.Vec[n]))
	}
	return h
}

// vecUnsupported is the boot-log line for a vecN: device, which this build
// cannot set up: UML's vector_setup prefix, the device and what works instead.
func vecUnsupported(n int, spec string) string {
	transport := "(none)"
	for _, kv := range strings.Split(spec, ",") {
		if v, ok := strings.CutPrefix(kv, "transport="); ok {
			transport = v
		}
	}
	return fmt.Sprintf("vector_setup - vec%d: the vector transports (transport=%s) are not supported by this build; "+
		"the device is absent (ethN= daemon, tuntap, mcast, ucast, vde and slirp are)", n, transport)
}

func (m *machine) openEth(h *hostNet, n int, spec string) (*EthPlan, error) {
	transport, rest, hasFields := strings.Cut(spec, ",")
	var f []string
	if hasFields {
		f = strings.Split(rest, ",")
	}
	field := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	name := fmt.Sprintf("eth%d", n)
	switch transport {
	case "daemon": // daemon,<mac>,<socktype>,<ctl>[,<data>]
		if field(3) != "" {
			m.logf("daemon_setup : Ignoring data socket specification")
		}
		typ, ctl := field(1), field(2)
		if typ == "" {
			typ = "unix"
		}
		if ctl == "" {
			ctl = netdev.DefaultSwitchCtl
		}
		mac := m.ethMAC(name, field(0))
		m.logf("Netdevice %d (%s) : ", n, mac)
		m.logf("daemon backend (uml_switch version 3) - %s:%s", typ, ctl)
		if typ != "unix" {
			return nil, fmt.Errorf("daemon_open : control connect failed, errno = %d (socket type '%s' is not supported; use unix)", 22, typ)
		}
		d, err := netdev.DialDaemon(ctl)
		if err != nil {
			return nil, err
		}
		h.own(name, func() { d.Close() })
		h.files[name] = d.Data
		return &EthPlan{Unit: n, MAC: mac, Kind: "daemon", Switch: append([]byte(nil), d.Switch[:]...)}, nil
	case "tuntap": // tuntap,<hostdev>,<mac>,<gate>
		if len(f) > 3 {
			return nil, fmt.Errorf("tap_setup_common - Extra garbage on specification : '%s'", strings.Join(f[3:], ","))
		}
		dev, gate := field(0), field(2)
		mac := m.ethMAC(name, field(1))
		m.logf("Netdevice %d (%s) : ", n, mac)
		if gate != "" {
			m.logf("TUN/TAP backend - IP = %s", gate)
		} else {
			m.logf("TUN/TAP backend - ")
		}
		if dev == "" { // the uml_net helper makes the tap and runs the address hooks
			t, tap, err := m.tuntapUp(gate)
			if err != nil {
				return nil, err
			}
			h.own(name, func() { t.Close() })
			h.files[name] = t
			h.hooks = append(h.hooks, addrHook{unit: n, tap: tap})
			return &EthPlan{Unit: n, MAC: mac, Kind: "tuntap"}, nil
		}
		t, err := openHostTap(dev)
		if err != nil {
			return nil, fmt.Errorf("%s: open host tap %s: %w", name, dev, err)
		}
		h.own(name, func() { t.Close() })
		h.files[name] = t
		return &EthPlan{Unit: n, MAC: mac, Kind: "tuntap"}, nil
	case "mcast": // mcast,<mac>,<group>,<port>,<ttl>
		if len(f) > 4 {
			return nil, fmt.Errorf("mcast_setup - Extra garbage on specification : '%s'", strings.Join(f[4:], ","))
		}
		group, port, ttl := netdev.DefaultMcastGroup, netdev.DefaultMcastPort, netdev.DefaultMcastTTL
		if field(1) != "" {
			group = field(1)
		}
		if p := field(2); p != "" {
			v, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("mcast_setup - Bad port : '%s'", p)
			}
			port = int(v)
		}
		if p := field(3); p != "" {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("mcast_setup - Bad ttl : '%s'", p)
			}
			ttl = int(v)
		}
		m.logf("Configured mcast device: %s:%d-%d", group, port, ttl)
		mac := m.ethMAC(name, field(0))
		m.logf("Netdevice %d (%s) : ", n, mac)
		m.logf("mcast backend multicast address: %s:%d, TTL:%d", group, port, ttl)
		addr, err := netip.ParseAddr(group)
		if err != nil || !addr.Is4() {
			return nil, fmt.Errorf("%s: mcast group '%s' is not an IPv4 address", name, group)
		}
		sock, err := netdev.OpenMcast(addr, port, ttl)
		if err != nil {
			return nil, err
		}
		h.own(name, func() { sock.Close() })
		h.files[name] = sock
		return &EthPlan{Unit: n, MAC: mac, Kind: "mcast", Group: group, Port: port}, nil
	case "ucast": // ucast,<mac>,<remote addr>,<listen port>,<remote port>
		if len(f) > 4 {
			return nil, fmt.Errorf("ucast_setup - Extra garbage on specification : '%s'", strings.Join(f[4:], ","))
		}
		addr, lport, rport := field(1), netdev.DefaultUcastPort, netdev.DefaultUcastPort
		if p := field(2); p != "" {
			v, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("ucast_setup - Bad listen port : '%s'", p)
			}
			lport = int(v)
		}
		if p := field(3); p != "" {
			v, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("ucast_setup - Bad remote port : '%s'", p)
			}
			rport = int(v)
		}
		m.logf("Configured ucast device: :%d -> %s:%d", lport, addr, rport)
		mac := m.ethMAC(name, field(0))
		m.logf("Netdevice %d (%s) : ", n, mac)
		m.logf("ucast backend address: %s:%d listen port: %d", addr, rport, lport)
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("%s: ucast remote address '%s' is not an IPv4 address (errno = 22)", name, addr)
		}
		sock, err := netdev.OpenUcast(lport)
		if err != nil {
			return nil, err
		}
		h.own(name, func() { sock.Close() })
		h.files[name] = sock
		return &EthPlan{Unit: n, MAC: mac, Kind: "ucast", Group: addr, Port: rport}, nil
	case "vde": // vde,<switch>,<mac>,<port>,<group>,<mode>,<description>
		sw, port, group, descr := field(0), field(2), field(3), field(5)
		mode, err := parseVdeMode(field(4))
		if err != nil {
			return nil, fmt.Errorf("vde_setup - Bad mode : '%s'", field(4))
		}
		if descr == "" {
			descr = "UML vde_transport"
		}
		shown := sw
		if shown == "" {
			shown = "(default socket)"
		}
		m.logf("Configured vde device: %s", shown)
		mac := m.ethMAC(name, field(1))
		m.logf("Netdevice %d (%s) : ", n, mac)
		if port != "" {
			m.logf("vde backend - %s, port %s", shown, port)
		} else {
			m.logf("vde backend - %s, ", shown) // as linux.uml 6.1 shows it (verified)
		}
		sock, plug, err := m.startVdePlug(sw, port, group, mode, descr)
		if err != nil {
			return nil, err
		}
		m.logf("vde backend - connection opened")
		h.own(name, func() { plug.Close() })
		h.own(name, func() { sock.Close() })
		h.files[name] = sock
		return &EthPlan{Unit: n, MAC: mac, Kind: "vde"}, nil
	case "slirp": // slirp,<mac>,<cmd>,<arg>,...
		mac := m.ethMAC(name, field(0))
		argv, truncated := slirpArgv(f[min(1, len(f)):])
		if truncated {
			m.logf("slirp_setup: truncating slirp arguments")
		}
		m.logf("Netdevice %d (%s) : ", n, mac)
		for _, l := range slirpLines(argv) {
			m.logf("%s", l)
		}
		sock, proc, err := m.startSlirp(argv)
		if err != nil {
			return nil, err
		}
		h.own(name, func() { proc.Close() })
		h.own(name, func() { sock.Close() })
		h.files[name] = sock
		return &EthPlan{Unit: n, MAC: mac, Kind: "slirp"}, nil
	case "ethertap", "slip":
		return nil, fmt.Errorf("eth_setup - %s: the %s transport is not supported by this build (daemon, tuntap, mcast, ucast, vde and slirp are)", name, transport)
	}
	return nil, nil // UML ignores an unknown transport on the command line
}

// ethMAC applies UML's setup_etheraddr rules (net.md §1) and logs its
// messages: a bad, multicast or zero address falls back to a random one.
func (m *machine) ethMAC(dev, s string) ether.MAC {
	if s != "" {
		mac, err := ether.ParseMAC(s)
		switch {
		case err != nil:
			m.logf("setup_etheraddr: failed to parse '%s' as an ethernet address", s)
		case mac.IsMulticast():
			m.logf("Attempt to assign a multicast ethernet address to a device disallowed")
		case mac.IsZero():
			m.logf("Attempt to assign an invalid ethernet address to a device disallowed")
		default:
			if !mac.IsLocal() {
				hint := mac
				hint[0] |= 0x02
				m.logf("Warning: Assigning a globally valid ethernet address to a device")
				m.logf("You should set the 2nd rightmost bit in the first byte of the MAC,")
				m.logf("i.e. %s", hint)
			}
			return mac
		}
	}
	m.logf("Choosing a random ethernet address for device %s", dev)
	return randomMAC()
}

// randomMAC is a random locally administered unicast address.
func randomMAC() ether.MAC {
	var mac ether.MAC
	rand.Read(mac[:])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

func openHostTap(name string) (*os.File, error) {
	t, err := netdev.OpenHostTap(name)
	if err != nil {
		return nil, err
	}
	return t.Detach(), nil
}

// startNet (K) creates each ethN TAP device in the guest's network
// namespace and starts its relay; it returns a function stopping them.
func (k *kernel) startNet(files map[string]*os.File) func() {
	for _, e := range k.plan.Eth {
		name := fmt.Sprintf("eth%d", e.Unit)
		if err := k.addEth(e, files[name]); err != nil {
			k.logf("%s: %v", name, err)
		}
	}
	return func() {
		k.ethMu.Lock()
		defer k.ethMu.Unlock()
		for unit, r := range k.relays {
			r.Stop()
			delete(k.relays, unit)
		}
	}
}

// addEth creates the TAP ethN for e in the guest's network namespace and
// relays it to the host side f (boot, or mconsole hot-plug).
func (k *kernel) addEth(e EthPlan, f *os.File) error {
	if f == nil {
		return errors.New("no host descriptor from the parent")
	}
	var tr netdev.Transport
	var err error
	switch e.Kind {
	case "daemon":
		var sw switchproto.Sockaddr
		copy(sw[:], e.Switch)
		tr, err = netdev.NewDaemon(f, sw)
	case "tuntap", "vde":
		tr, err = netdev.NewFile(f)
	case "mcast", "ucast":
		tr, err = netdev.NewDatagram(f, netip.MustParseAddr(e.Group), e.Port)
	case "slirp":
		tr, err = netdev.NewSlip(f)
	default:
		f.Close()
		err = fmt.Errorf("unknown transport %q", e.Kind)
	}
	if err != nil {
		return err
	}
	var tap *netdev.File
	if e.Kind == "slirp" { // bare IPv4 packets: no link layer, as UML's slirp device
		tap, err = netdev.CreateTun(fmt.Sprintf("eth%d", e.Unit))
	} else {
		tap, err = netdev.CreateTap(fmt.Sprintf("eth%d", e.Unit), e.MAC)
	}
	if err != nil {
		tr.Close()
		return err
	}
	k.ethMu.Lock()
	defer k.ethMu.Unlock()
	if k.relays == nil {
		k.relays = map[int]*netdev.Relay{}
	}
	k.relays[e.Unit] = netdev.StartRelay(tap, tr)
	return nil
}

// removeEth stops ethN's relay, which deletes the TAP, unless the guest
// has the interface up ("busy") — UML's rule for removing a device.
func (k *kernel) removeEth(unit int) error {
	k.ethMu.Lock()
	defer k.ethMu.Unlock()
	r := k.relays[unit]
	if r == nil {
		return errors.New("Device doesn't exist")
	}
	if ifc, err := net.InterfaceByName(fmt.Sprintf("eth%d", unit)); err == nil && ifc.Flags&net.FlagUp != 0 {
		return errors.New("busy")
	}
	delete(k.relays, unit)
	return r.Stop()
}
