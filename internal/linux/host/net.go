package host

import (
	"fmt"
	"os"
	"sort"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/netdev"
)

// Eth devices (shared/spec/net.md, architecture.md "Network"): P opens
// each device's host side with its transport (internal/netdev) in the
// host's network namespace, where abstract sockets, switches and host taps
// live, and donates the descriptor as the device's name (plan.Eth.Name;
// hybrid's receive side as plan.Eth.RxName); K creates ethN in the
// guest's namespace and relays frames.

// hostNet holds the host sides P opened; they live across reboots.
type hostNet struct {
	devs map[string]*netdev.Opened // by device name (eth0, vec1)
}

// addrHooks returns the devices whose address changes run uml_net hooks.
func (h *hostNet) addrHooks() []addrHook {
	if h == nil {
		return nil
	}
	var hooks []addrHook
	for _, name := range h.names() {
		if o := h.devs[name]; o.UMLNetTap != "" {
			hooks = append(hooks, addrHook{unit: o.Eth.Unit, tap: o.UMLNetTap})
		}
	}
	return hooks
}

func (h *hostNet) names() []string {
	names := make([]string, 0, len(h.devs))
	for n := range h.devs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// drop closes the host side of one device (mconsole remove).
func (h *hostNet) drop(name string) {
	h.devs[name].Close()
	delete(h.devs, name)
}

func (h *hostNet) Close() {
	if h == nil {
		return
	}
	for name := range h.devs {
		h.drop(name)
	}
}

// donate adds the devices' descriptors to files and their names to order.
func (h *hostNet) donate(files map[string]*os.File, order []string) []string {
	if h == nil {
		return order
	}
	for _, name := range h.names() {
		o := h.devs[name]
		files[name] = o.File
		order = append(order, name)
		if o.Rx != nil {
			files[o.Eth.RxName()] = o.Rx
			order = append(order, o.Eth.RxName())
		}
	}
	return order
}

// EnvNetRelay, set to anything, keeps every device on K's relay: no
// kernel data path (netdev's kpath.go) even when linux runs as root.
const EnvNetRelay = "UMLKIT_NET_RELAY"

// kernelPaths reports whether devices get the kernel data path where
// their transport allows: linux runs as host root (P may make links in the
// host's network namespace and load tcx programs; a user's linux never
// does) and EnvNetRelay is not set.
func (m *machine) kernelPaths() bool { return m.ids != nil && os.Getenv(EnvNetRelay) == "" }

// wantKernelPath marks o for the kernel data path when it can have one,
// and says in the boot log when the relay is kept by choice.
func (m *machine) wantKernelPath(o *netdev.Opened) {
	if o.KernelPathTarget() == "" || m.ids == nil {
		return
	}
	if !m.kernelPaths() {
		m.logf("%s: %s is set: frames are relayed by linux", o.Eth.Name(), EnvNetRelay)
		return
	}
	o.Eth.KPath = true
}

// kernelNetNS opens the network namespace of K (pid kpid).
func kernelNetNS(kpid int) (*os.File, error) {
	return os.Open(fmt.Sprintf("/proc/%d/ns/net", kpid))
}

// joinKernelPaths builds the kernel data path of every device marked for
// one into the network namespace of K (pid kpid), before K sets up its
// devices; a device whose path fails is relayed by K (its boot log says
// why). Boot only (cfgMu held): a hot-plugged device joins in devConfig.
func (h *hostNet) joinKernelPaths(m *machine, kpid int) {
	if h == nil {
		return
	}
	var ns *os.File
	for _, name := range h.names() {
		o := h.devs[name]
		if !o.Eth.KPath {
			continue
		}
		if ns == nil {
			var err error
			if ns, err = kernelNetNS(kpid); err != nil {
				m.logf("%s: kernel data path: %v; frames are relayed by linux", name, err)
				return
			}
			defer ns.Close()
		}
		m.joinKernelPath(o, ns)
	}
}

// joinKernelPath builds o's kernel data path into K's namespace ns and
// logs which path the device takes.
func (m *machine) joinKernelPath(o *netdev.Opened, ns *os.File) bool {
	desc, err := o.JoinKernel(ns)
	if err != nil {
		m.logf("%v; frames are relayed by linux", err)
		return false
	}
	m.logf("%s", desc)
	return true
}

// leaveKernelPaths takes every kernel data path down (K has exited: the
// next boot joins its namespace anew; cfgMu held).
func (h *hostNet) leaveKernelPaths() {
	if h == nil {
		return
	}
	for _, o := range h.devs {
		o.LeaveKernel()
	}
}

// netHost is what the transports' host halves may use of P.
func (m *machine) netHost() *netdev.Host {
	return &netdev.Host{Logf: m.logf, Stderr: m.stdio.Err, UMLNet: m.tuntapUp, HostFD: m.hostFD}
}

// openDev sets up ethN=spec or (vector) vecN:spec (netdev.Open,
// netdev.OpenVector) and keeps its host side; nil when UML makes no device
// of spec.
func (m *machine) openDev(h *hostNet, vector bool, n int, spec string) (*plan.Eth, error) {
	if h == nil {
		return nil, errNotRunning // the mconsole answers before the network is set up
	}
	open := netdev.Open
	if vector {
		open = netdev.OpenVector
	}
	o, err := open(m.netHost(), n, spec)
	if err != nil || o == nil {
		return nil, err
	}
	h.devs[o.Eth.Name()] = o
	return &o.Eth, nil
}

// setupNet sets up every ethN= and vecN: of the command line the way
// UML's eth_init and vector_init do and records each device it could
// build in the plan. Failures are logged and skip the device.
func (m *machine) setupNet() *hostNet {
	h := &hostNet{devs: map[string]*netdev.Opened{}}
	for _, dev := range []struct {
		vector bool
		specs  map[int]string
	}{{false, m.cfg.Eth}, {true, m.cfg.Vec}} {
		units := make([]int, 0, len(dev.specs))
		for n := range dev.specs {
			units = append(units, n)
		}
		sort.Ints(units)
		for _, n := range units {
			if e, err := m.openDev(h, dev.vector, n, dev.specs[n]); err != nil {
				m.logf("%v", err)
			} else if e != nil {
				m.wantKernelPath(h.devs[e.Name()])
				m.plan.Eth = append(m.plan.Eth, *e)
			}
		}
	}
	return h
}
