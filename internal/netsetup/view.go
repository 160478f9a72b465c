package netsetup

import "net/netip"

// View is a snapshot of the IPv4 state of one network namespace that the
// uml_net policy judges requests against: every interface address, the
// main routing table, the links and the neighbour (ARP) table. It is plain
// data, so the policy that reads it is a pure function.
type View struct {
	Addrs  []Addr
	Routes []Route
	Links  []Link
	Neighs []Neigh
}

// Addr is an IPv4 address assigned to an interface, with its prefix length.
type Addr struct {
	Prefix netip.Prefix
	Dev    string
}

// RouteKind is the type of a route (rtm_type).
type RouteKind int

// Route kinds the policy distinguishes.
const (
	RouteUnicast RouteKind = iota // forwards to a device or a gateway
	RouteOther                    // blackhole, unreachable, prohibit, ...
)

// Route is an IPv4 route of the main table.
type Route struct {
	Dst     netip.Prefix // 0.0.0.0/0 for the default route
	Gateway netip.Addr   // invalid when the route is on-link
	Dev     string       // "" for routes without a device (blackhole, ...)
	Kind    RouteKind
}

// Link is a network interface.
type Link struct {
	Index int
	Name  string
	Alias string // ifalias (uml_net marks its taps there)
	// ARP is true for broadcast interfaces that resolve addresses with ARP
	// (a LAN: Ethernet, veth, bridge, tap); false for loopback,
	// point-to-point and NOARP devices.
	ARP bool
}

// Neigh is a (non-proxy) IPv4 neighbour entry.
type Neigh struct {
	Addr netip.Addr
	Dev  string
	// InUse is true when the entry says a host answered for the address
	// (reachable, stale, delay, probe, permanent): someone holds it.
	InUse bool
}

// Link returns the link named name.
func (v View) Link(name string) (Link, bool) {
	for _, l := range v.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}
