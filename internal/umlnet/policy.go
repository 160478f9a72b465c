package umlnet

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/umlkit/umlkit/internal/netsetup"
)

// The address policy: which addresses a caller may give its taps (the host
// side, `tuntap up GATE`, `slip up GATE`) and route into them (the guest
// side, `add DEV ADDR MASK`). The functions here are pure: they judge a
// request against a netsetup.View taken just before, so the rules are unit
// tested without a network namespace.
//
// An address is refused when it
//   - is assigned to an interface of the host (for a tap address, unless
//     only the caller's own uml_net taps carry it: several of one user's
//     machines may share their host-side address);
//   - is the gateway of a route of the main table;
//   - is the network or broadcast address of a LAN the host is on;
//   - is in use on a host LAN (an ARP entry says a machine answers for it);
//   - is routed by the host somewhere else than nowhere, a LAN, or the
//     default route: a route through a gateway other than the default
//     route, a host route to a device, a route to another user's tap, a
//     blackhole/unreachable/prohibit route, or an on-link route on a device
//     that is not a LAN (point-to-point, NOARP: a VPN) — taking it would
//     divert the host's own traffic for that address into the tap;
//   - reaches the host only through its default route and is a global
//     (internet) address: 8.8.8.8 is remote, 10.0.1.2 is not.
//
// Routes and addresses on the caller's own taps never count against it.

// PolicyError is a request the policy refuses.
type PolicyError struct {
	Addr   netip.Addr
	As     string // "tap address", "guest address"
	Reason string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("refusing %s as %s: %s", e.Addr, e.As, e.Reason)
}

// Owner says whose an interface is, from the caller's point of view.
type Owner int

// Interface owners.
const (
	OwnerHost   Owner = iota // not made by uml_net
	OwnerCaller              // a uml_net tap of the caller
	OwnerOther               // a uml_net tap of another user
)

// ownerOf classifies a link by its alias (AliasPrefix + uid).
func ownerOf(l netsetup.Link, callerAlias string) Owner {
	switch {
	case l.Alias == callerAlias:
		return OwnerCaller
	case strings.HasPrefix(l.Alias, AliasPrefix):
		return OwnerOther
	}
	return OwnerHost
}

// policy judges requests of one caller against one View.
type policy struct {
	v     netsetup.View
	alias string // the caller's alias: AliasPrefix + uid
}

func (p policy) owner(dev string) Owner {
	l, ok := p.v.Link(dev)
	if !ok {
		return OwnerHost
	}
	return ownerOf(l, p.alias)
}

// CheckTapAddr judges addr as the host-side address of a new tap (or SLIP
// interface) of the caller whose alias is callerAlias.
func CheckTapAddr(v netsetup.View, callerAlias string, addr netip.Addr) error {
	return policy{v, callerAlias}.check(addr, "tap address", true)
}

// CheckGuestAddr judges addr as a guest address to route into the caller's
// tap dev (`add dev addr mask`). dev must already be known to be the
// caller's.
func CheckGuestAddr(v netsetup.View, callerAlias, dev string, addr netip.Addr) error {
	p := policy{v, callerAlias}
	if p.owner(dev) != OwnerCaller {
		return &PolicyError{addr, "guest address", dev + " is not a uml_net tap of the caller"}
	}
	return p.check(addr, "guest address", false)
}

// CheckDelAddr judges `del dev addr mask`: the host route addr/32 must be on
// the caller's tap dev, so that a caller never removes (or unpublishes the
// proxy ARP entries of) an address someone else routed.
func CheckDelAddr(v netsetup.View, callerAlias, dev string, addr netip.Addr) error {
	p := policy{v, callerAlias}
	if p.owner(dev) != OwnerCaller {
		return &PolicyError{addr, "guest address", dev + " is not a uml_net tap of the caller"}
	}
	host := netip.PrefixFrom(addr, 32)
	for _, r := range v.Routes {
		if r.Dst == host && r.Dev == dev && !r.Gateway.IsValid() {
			return nil
		}
	}
	return &PolicyError{addr, "guest address", "it is not routed to " + dev}
}

func (p policy) check(a netip.Addr, as string, ownAddrOK bool) error {
	refuse := func(format string, args ...any) error {
		return &PolicyError{a, as, fmt.Sprintf(format, args...)}
	}
	for _, ha := range p.v.Addrs {
		if ha.Prefix.Addr() != a {
			continue
		}
		if ownAddrOK && p.owner(ha.Dev) == OwnerCaller {
			continue
		}
		return refuse("it is an address of this host (on %s)", ha.Dev)
	}
	for _, r := range p.v.Routes {
		if r.Gateway == a {
			return refuse("it is the gateway of the host's route %s", routeText(r))
		}
	}
	for _, lan := range p.lans() {
		if lan.p.Bits() > 30 {
			continue
		}
		if a == lan.p.Masked().Addr() {
			return refuse("it is the network address of the host's LAN %s on %s", lan.p.Masked(), lan.dev)
		}
		if a == broadcast(lan.p) {
			return refuse("it is the broadcast address of the host's LAN %s on %s", lan.p.Masked(), lan.dev)
		}
	}
	for _, n := range p.v.Neighs {
		if n.Addr == a && n.InUse && p.owner(n.Dev) != OwnerCaller {
			return refuse("a machine on %s answers for it (ARP)", n.Dev)
		}
	}
	r, ok := p.lookup(a)
	if !ok {
		return nil // the host has no route for it: nothing to divert
	}
	switch {
	case r.Kind != netsetup.RouteUnicast:
		return refuse("the host's route %s does not forward it", routeText(r))
	case r.Dst.Bits() == 0:
		// Only the default route reaches it: fine unless it is on the
		// internet.
		if isGlobal(a) {
			return refuse("it is a remote address, reached through the host's route %s", routeText(r))
		}
		return nil
	case r.Gateway.IsValid():
		return refuse("it is a remote address, reached through the host's route %s", routeText(r))
	case p.owner(r.Dev) == OwnerOther:
		return refuse("it is routed to %s, a uml_net tap of another user", r.Dev)
	case r.Dst.Bits() == 32:
		return refuse("the host routes it to %s", r.Dev)
	}
	if l, ok := p.v.Link(r.Dev); ok && l.ARP {
		return nil // an address of a host LAN: the proxy ARP case
	}
	return refuse("it is on %s, which is not a LAN (route %s)", r.Dev, routeText(r))
}

type lan struct {
	p   netip.Prefix
	dev string
}

// lans returns the host's on-link prefixes (interface addresses and
// on-link main-table routes) outside the caller's taps.
func (p policy) lans() []lan {
	var out []lan
	for _, a := range p.v.Addrs {
		if p.owner(a.Dev) != OwnerCaller {
			out = append(out, lan{a.Prefix, a.Dev})
		}
	}
	for _, r := range p.v.Routes {
		if !r.Gateway.IsValid() && r.Kind == netsetup.RouteUnicast && r.Dev != "" && r.Dst.Bits() > 0 && p.owner(r.Dev) != OwnerCaller {
			out = append(out, lan{r.Dst, r.Dev})
		}
	}
	return out
}

// lookup is the longest-prefix match of a in the main table, ignoring the
// caller's own taps.
func (p policy) lookup(a netip.Addr) (netsetup.Route, bool) {
	var best netsetup.Route
	found := false
	for _, r := range p.v.Routes {
		if !r.Dst.Contains(a) || (r.Dev != "" && p.owner(r.Dev) == OwnerCaller) {
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() {
			best, found = r, true
		}
	}
	return best, found
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	for i := range 4 {
		b[i] |= byte(host >> (24 - 8*i))
	}
	return netip.AddrFrom4(b)
}

func routeText(r netsetup.Route) string {
	s := r.Dst.String()
	if r.Dst.Bits() == 0 {
		s = "default"
	}
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

// nonGlobal are the IPv4 blocks that are not internet addresses: private
// use (RFC 1918), shared address space (RFC 6598), link local, IETF
// protocol assignments, documentation and benchmarking (RFC 6890).
var nonGlobal = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

func isGlobal(a netip.Addr) bool {
	for _, p := range nonGlobal {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
