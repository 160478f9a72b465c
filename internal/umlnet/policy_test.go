package umlnet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/netsetup"
)

const me = AliasPrefix + "1000"

// lanHost is a host on 192.168.1.0/24 (gateway .1, itself .10, a printer
// at .20 in its ARP table), with a VPN, a corporate route, a blackhole, a
// tap of the caller (gate 10.0.1.1, guest 10.0.1.2) and a tap of another
// user (gate 10.0.2.1, guest 192.168.1.77 proxied on the LAN).
func lanHost() netsetup.View {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	return netsetup.View{
		Links: []netsetup.Link{
			{Index: 1, Name: "lo"},
			{Index: 2, Name: "eth0", ARP: true},
			{Index: 3, Name: "wg0"},
			{Index: 4, Name: "tap0", Alias: me, ARP: true},
			{Index: 5, Name: "tap1", Alias: AliasPrefix + "1001", ARP: true},
		},
		Addrs: []netsetup.Addr{
			{Prefix: p("127.0.0.1/8"), Dev: "lo"},
			{Prefix: p("192.168.1.10/24"), Dev: "eth0"},
			{Prefix: p("10.8.0.2/24"), Dev: "wg0"},
			{Prefix: p("10.0.1.1/32"), Dev: "tap0"},
			{Prefix: p("10.0.2.1/32"), Dev: "tap1"},
		},
		Routes: []netsetup.Route{
			{Dst: p("0.0.0.0/0"), Gateway: a("192.168.1.1"), Dev: "eth0"},
			{Dst: p("192.168.1.0/24"), Dev: "eth0"},
			{Dst: p("10.8.0.0/24"), Dev: "wg0"},
			{Dst: p("172.20.0.0/16"), Gateway: a("10.8.0.1"), Dev: "wg0"},
			{Dst: p("10.66.0.0/16"), Kind: netsetup.RouteOther},
			{Dst: p("10.0.1.2/32"), Dev: "tap0"},
			{Dst: p("192.168.1.77/32"), Dev: "tap1"},
			{Dst: p("192.168.1.99/32"), Dev: "eth0"},
		},
		Neighs: []netsetup.Neigh{
			{Addr: a("192.168.1.1"), Dev: "eth0", InUse: true},
			{Addr: a("192.168.1.20"), Dev: "eth0", InUse: true},
			{Addr: a("192.168.1.30"), Dev: "eth0", InUse: false}, // failed: nobody answered
			{Addr: a("10.0.1.2"), Dev: "tap0", InUse: true},
		},
	}
}

func TestCheckTapAddr(t *testing.T) {
	v := lanHost()
	tests := []struct {
		addr   string
		reason string // "" = allowed
	}{
		{"10.0.5.1", ""},      // private, only the default route reaches it
		{"192.168.1.250", ""}, // a free LAN address (UML howto's host side)
		{"192.168.1.30", ""},  // ARP failed for it: free
		{"10.0.1.1", ""},      // the caller's own tap has it already
		{"203.0.113.5", ""},   // documentation block
		{"192.168.1.1", "it is the gateway of the host's route default via 192.168.1.1 dev eth0"},
		{"10.8.0.1", "it is the gateway of the host's route 172.20.0.0/16 via 10.8.0.1 dev wg0"},
		{"192.168.1.10", "it is an address of this host (on eth0)"},
		{"10.0.2.1", "it is an address of this host (on tap1)"},
		{"192.168.1.0", "it is the network address of the host's LAN 192.168.1.0/24 on eth0"},
		{"192.168.1.255", "it is the broadcast address of the host's LAN 192.168.1.0/24 on eth0"},
		{"10.8.0.255", "it is the broadcast address of the host's LAN 10.8.0.0/24 on wg0"},
		{"192.168.1.20", "a machine on eth0 answers for it (ARP)"},
		{"8.8.8.8", "it is a remote address, reached through the host's route default via 192.168.1.1 dev eth0"},
		{"172.20.3.4", "it is a remote address, reached through the host's route 172.20.0.0/16 via 10.8.0.1 dev wg0"},
		{"10.66.1.1", "the host's route 10.66.0.0/16 does not forward it"},
		{"10.8.0.7", "it is on wg0, which is not a LAN (route 10.8.0.0/24 dev wg0)"},
		{"192.168.1.77", "it is routed to tap1, a uml_net tap of another user"},
		{"192.168.1.99", "the host routes it to eth0"},
	}
	for _, tt := range tests {
		err := CheckTapAddr(v, me, netip.MustParseAddr(tt.addr))
		checkVerdict(t, "CheckTapAddr("+tt.addr+")", err, "tap address", tt.reason)
	}
}

func TestCheckGuestAddr(t *testing.T) {
	v := lanHost()
	tests := []struct {
		dev, addr string
		reason    string
	}{
		{"tap0", "192.168.1.250", ""},
		{"tap0", "10.0.1.2", ""}, // already routed to the caller's own tap (re-add)
		{"tap0", "10.0.1.3", ""},
		{"tap0", "10.0.1.1", "it is an address of this host (on tap0)"}, // its own host side
		{"tap0", "8.8.8.8", "it is a remote address"},
		{"tap0", "192.168.1.1", "it is the gateway"},
		{"tap0", "192.168.1.20", "a machine on eth0 answers for it (ARP)"},
		{"tap0", "192.168.1.77", "it is routed to tap1, a uml_net tap of another user"},
		{"tap1", "10.0.9.9", "tap1 is not a uml_net tap of the caller"},
		{"eth0", "10.0.9.9", "eth0 is not a uml_net tap of the caller"},
	}
	for _, tt := range tests {
		err := CheckGuestAddr(v, me, tt.dev, netip.MustParseAddr(tt.addr))
		checkVerdict(t, "CheckGuestAddr("+tt.dev+", "+tt.addr+")", err, "guest address", tt.reason)
	}
}

func TestCheckDelAddr(t *testing.T) {
	v := lanHost()
	tests := []struct {
		dev, addr string
		reason    string
	}{
		{"tap0", "10.0.1.2", ""},
		{"tap0", "192.168.1.77", "it is not routed to tap0"}, // another user's guest
		{"tap0", "8.8.8.8", "it is not routed to tap0"},
		{"tap1", "192.168.1.77", "tap1 is not a uml_net tap of the caller"},
	}
	for _, tt := range tests {
		err := CheckDelAddr(v, me, tt.dev, netip.MustParseAddr(tt.addr))
		checkVerdict(t, "CheckDelAddr("+tt.dev+", "+tt.addr+")", err, "guest address", tt.reason)
	}
}

// TestPolicyNoRoutes: a host without any route (a fresh namespace) has
// nothing to divert; only its own addresses are taken.
func TestPolicyNoRoutes(t *testing.T) {
	v := netsetup.View{Addrs: []netsetup.Addr{{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Dev: "lo"}}}
	if err := CheckTapAddr(v, me, netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("CheckTapAddr(8.8.8.8) without routes = %v; want nil", err)
	}
	// An on-link default route on an Ethernet reaches the internet too.
	v.Links = []netsetup.Link{{Index: 2, Name: "eth0", ARP: true}}
	v.Routes = []netsetup.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0"}}
	checkVerdict(t, "CheckTapAddr(8.8.8.8) with default dev eth0", CheckTapAddr(v, me, netip.MustParseAddr("8.8.8.8")),
		"tap address", "it is a remote address, reached through the host's route default dev eth0")
	if err := CheckTapAddr(v, me, netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("CheckTapAddr(10.1.2.3) with default dev eth0 = %v; want nil", err)
	}
}

func checkVerdict(t *testing.T, what string, err error, as, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("%s = %v; want allowed", what, err)
		}
		return
	}
	var pe *PolicyError
	if !errors.As(err, &pe) {
		t.Errorf("%s = %v; want a refusal: %s", what, err, reason)
		return
	}
	if pe.As != as || !strings.HasPrefix(pe.Reason, reason) {
		t.Errorf("%s = %q; want as %q, reason starting %q", what, pe.Error(), as, reason)
	}
	if strings.Contains(pe.Error(), "\n") {
		t.Errorf("%s: refusal %q is not one line", what, pe.Error())
	}
}

func TestBroadcast(t *testing.T) {
	for p, want := range map[string]string{"10.0.0.0/8": "10.255.255.255", "192.168.1.77/24": "192.168.1.255", "10.1.2.3/30": "10.1.2.3", "0.0.0.0/0": "255.255.255.255"} {
		if got := broadcast(netip.MustParsePrefix(p)); got.String() != want {
			t.Errorf("broadcast(%s) = %s; want %s", p, got, want)
		}
	}
}
