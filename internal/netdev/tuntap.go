//go:build linux

package netdev

import (
	"fmt"
	"strings"

	"github.com/umlkit/umlkit/internal/tuntap"
)

// ethN=tuntap,<host tap>,<mac>,<gate>: a host TAP device. With a name, P
// opens that (preconfigured, persistent) tap; without one, the uml_net
// helper makes a tap configured with the gateway address and P runs its
// address hooks (net.md §3-§4). K relays the guest's ethN to it.

func init() {
	Register(&Driver{
		Name: "tuntap",
		Help: "tuntap,<host tap>[,<mac>] (a preconfigured host tap), tuntap,,[<mac>],<gateway ip>\n" +
			"(a tap made by the uml_net helper, found in $PATH:/usr/lib/uml)",
		Parse: parseTuntap,
		Open:  openTuntap,
		Wrap:  wrapFile,
	})
}

type tuntapSpec struct{ Dev, MAC, Gate string }

func (s tuntapSpec) Fields() []string { return []string{s.Dev, s.MAC, s.Gate} }

func parseTuntap(f []string) (Spec, error) {
	if len(f) > 3 {
		return nil, fmt.Errorf("tap_setup_common - Extra garbage on specification : '%s'", strings.Join(f[3:], ","))
	}
	return tuntapSpec{Dev: field(f, 0), MAC: field(f, 1), Gate: field(f, 2)}, nil
}

func openTuntap(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(tuntapSpec)
	name := fmt.Sprintf("eth%d", n)
	mac := SetupMAC(h.logf, name, s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	if s.Gate != "" {
		h.logf("TUN/TAP backend - IP = %s", s.Gate)
	} else {
		h.logf("TUN/TAP backend - ")
	}
	if s.Dev == "" { // the uml_net helper makes the tap and runs the address hooks
		if h.UMLNet == nil {
			return nil, fmt.Errorf("%s: no uml_net helper", name)
		}
		t, tap, err := h.UMLNet(s.Gate)
		if err != nil {
			return nil, err
		}
		o, err := newOpened(n, "tuntap", mac, t, nil)
		if err != nil {
			return nil, err
		}
		o.UMLNetTap = tap
		o.kpath = kpathTarget{kpathTap, tap}
		return o, nil
	}
	d, err := tuntap.Open(tuntap.Config{Name: s.Dev, Mode: tuntap.TAP, VnetHdr: true})
	if err == nil {
		if err = d.SetOffload(vnetOffloads); err != nil {
			d.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: open host tap %s: %w", name, s.Dev, err)
	}
	o, err := newOpened(n, "tuntap", mac, d.File(), nil)
	if err != nil {
		return nil, err
	}
	// The host's kernel is the tap's other end: it takes and sends large
	// segments, which pass through whole (a tap made by uml_net comes
	// without vnet headers and carries plain frames).
	o.Eth.Vnet, o.Eth.Offload = true, true
	o.kpath = kpathTarget{kpathTap, d.Name()}
	return o, nil
}
