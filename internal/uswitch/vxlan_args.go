//go:build linux

package uswitch

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/vxlan"
)

// The VXLAN options (umlkit's own, docs/uml_switch.md "VXLAN"): -vxlan VNI
// turns the uplink on; the others configure it and need it. Mistakes are
// one-line errors (not ErrUsage: the real usage text does not know them).
var vxlanOpts = map[string]bool{ // name → takes a value
	"-vxlan": true, "-vxlan-peer": true, "-vxlan-group": true, "-vxlan-local": true,
	"-vxlan-port": true, "-vxlan-dev": true, "-vxlan-ttl": true, "-vxlan-learn-port": false,
}

func init() {
	for n, v := range vxlanOpts {
		if v {
			inlineOK[n] = true
		}
	}
}

// vxlanArg parses the VXLAN option name (the word a) with its value from
// inline or rest; it returns how many words of rest it used, or -1 when
// name is not a VXLAN option.
func (o *Options) vxlanArg(name, a string, rest []string, inline string, hasInline bool) (int, error) {
	takes, ok := vxlanOpts[name]
	if !ok {
		return -1, nil
	}
	if o.Vxlan == nil {
		o.Vxlan = &VxlanConfig{}
	}
	c := o.Vxlan
	if !takes {
		c.LearnPort = true
		return 0, nil
	}
	v, used := inline, 0
	if !hasInline {
		if len(rest) == 0 {
			return 0, fmt.Errorf("%s needs an argument", name)
		}
		v, used = rest[0], 1
	}
	bad := func(what string) error { return fmt.Errorf("%s %q: %s", name, v, what) }
	switch name {
	case "-vxlan":
		vni, err := vxlan.ParseVNI(v)
		if err != nil {
			return used, bad("not a VNI (0 to " + strconv.Itoa(vxlan.MaxVNI) + ")")
		}
		c.VNI, c.vniSet = vni, true
	case "-vxlan-peer":
		ap, err := parsePeer(v)
		if err != nil {
			return used, bad(err.Error())
		}
		c.Peers = append(c.Peers, ap)
	case "-vxlan-group":
		a, err := netip.ParseAddr(v)
		if err != nil || !a.IsMulticast() || a.Zone() != "" {
			return used, bad("not a multicast group address")
		}
		c.Group = a.Unmap()
	case "-vxlan-local":
		a, err := netip.ParseAddr(v)
		if err != nil || a.IsMulticast() || a.IsUnspecified() || a.Zone() != "" {
			return used, bad("not a unicast address of this host")
		}
		c.Local = a.Unmap()
	case "-vxlan-port":
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return used, bad("not a UDP port (1 to 65535)")
		}
		c.Port = uint16(n)
	case "-vxlan-dev":
		if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t") {
			return used, bad("not an interface name")
		}
		c.Dev = v
	case "-vxlan-ttl":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 255 {
			return used, bad("not a TTL (1 to 255)")
		}
		c.TTL = n
	}
	return used, nil
}

// parsePeer parses ADDR, or ADDR:PORT ([ADDR]:PORT for IPv6); an IPv6
// link-local ADDR may name its interface (fe80::1%eth0). Port 0 means the
// uplink's port.
func parsePeer(v string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(v); err == nil {
		return checkPeer(netip.AddrPortFrom(a.Unmap(), 0))
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, errors.New("not ADDR or ADDR:PORT ([ADDR]:PORT for IPv6)")
	}
	return checkPeer(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

func checkPeer(ap netip.AddrPort) (netip.AddrPort, error) {
	if a := ap.Addr(); a.IsMulticast() || a.IsUnspecified() {
		return netip.AddrPort{}, errors.New("not a unicast address (a multicast group goes to -vxlan-group)")
	}
	return ap, nil
}

// checkVxlan checks the VXLAN options together once all are parsed.
func (o *Options) checkVxlan() error {
	c := o.Vxlan
	if c == nil {
		return nil
	}
	if !c.vniSet {
		return errors.New("the -vxlan-* options need -vxlan VNI")
	}
	if len(c.Peers) == 0 && !c.Group.IsValid() {
		return errors.New("-vxlan needs a -vxlan-peer or a -vxlan-group to send to")
	}
	if c.Dev != "" && !c.Group.IsValid() {
		return errors.New("-vxlan-dev names the interface of -vxlan-group, which is missing")
	}
	fam, from := 0, ""
	check := func(opt string, a netip.Addr) error {
		if !a.IsValid() {
			return nil
		}
		f := 4
		if a.Is6() {
			f = 6
		}
		if fam == 0 {
			fam, from = f, opt+" "+a.String()
			return nil
		}
		if f != fam {
			return fmt.Errorf("%s %s is IPv%d but %s is IPv%d: one uplink uses one address family", opt, a, f, from, fam)
		}
		return nil
	}
	if err := check("-vxlan-local", c.Local); err != nil {
		return err
	}
	if err := check("-vxlan-group", c.Group); err != nil {
		return err
	}
	for _, p := range c.Peers {
		if err := check("-vxlan-peer", p.Addr()); err != nil {
			return err
		}
	}
	return nil
}
