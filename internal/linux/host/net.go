package host

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/netdev"
)

// Eth devices (shared/spec/net.md, architecture.md "Network"): P opens
// each device's host side with its transport (internal/netdev) in the
// host's network namespace, where abstract sockets, switches and host taps
// live, and donates the descriptor as plan.EthFD(unit); K creates ethN in
// the guest's namespace and relays frames.

// hostNet holds the host sides P opened; they live across reboots.
type hostNet struct {
	devs map[int]*netdev.Opened // by unit
}

// addrHooks returns the devices whose address changes run uml_net hooks.
func (h *hostNet) addrHooks() []addrHook {
	if h == nil {
		return nil
	}
	var hooks []addrHook
	for _, unit := range h.units() {
		if tap := h.devs[unit].UMLNetTap; tap != "" {
			hooks = append(hooks, addrHook{unit: unit, tap: tap})
		}
	}
	return hooks
}

func (h *hostNet) units() []int {
	units := make([]int, 0, len(h.devs))
	for u := range h.devs {
		units = append(units, u)
	}
	sort.Ints(units)
	return units
}

// drop closes the host side of one device (mconsole remove).
func (h *hostNet) drop(unit int) {
	h.devs[unit].Close()
	delete(h.devs, unit)
}

func (h *hostNet) Close() {
	if h == nil {
		return
	}
	for unit := range h.devs {
		h.drop(unit)
	}
}

// donate adds the eth descriptors to files and their names to order.
func (h *hostNet) donate(files map[string]*os.File, order []string) []string {
	if h == nil {
		return order
	}
	for _, unit := range h.units() {
		name := plan.EthFD(unit)
		files[name] = h.devs[unit].File
		order = append(order, name)
	}
	return order
}

// netHost is what the transports' host halves may use of P.
func (m *machine) netHost() *netdev.Host {
	return &netdev.Host{Logf: m.logf, Stderr: m.stdio.Err, UMLNet: m.tuntapUp}
}

// openEth sets up ethN=spec (netdev.Open) and keeps its host side; nil
// when UML makes no device of spec.
func (m *machine) openEth(h *hostNet, n int, spec string) (*plan.Eth, error) {
	if h == nil {
		return nil, errNotRunning // the mconsole answers before the network is set up
	}
	o, err := netdev.Open(m.netHost(), n, spec)
	if err != nil || o == nil {
		return nil, err
	}
	h.devs[n] = o
	return &o.Eth, nil
}

// setupNet sets up every ethN= of the command line the way UML's eth_init
// does and records each device it could build in the plan. Failures are
// logged and skip the device.
func (m *machine) setupNet() *hostNet {
	h := &hostNet{devs: map[int]*netdev.Opened{}}
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
		"the device is absent (ethN= %s are)", n, transport, netdev.SupportedText())
}
