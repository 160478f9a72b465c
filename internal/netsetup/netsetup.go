//go:build linux

// Package netsetup performs the host network setup of the uml_net helper
// through rtnetlink (github.com/vishvananda/netlink) and /proc/sys writes —
// never a shell or an external command: host addresses on taps, host routes,
// proxy ARP (the sysctl and published neighbour entries), ip_forward, and the
// interface alias uml_net uses to mark the devices it created for a user.
//
// Every call acts on the network namespace of the calling thread.
// Spec: shared/spec/net.md §4.2, §4.3.
package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ProcSys is the root of the sysctl tree.
const ProcSys = "/proc/sys"

// Host performs setup; the zero value uses ProcSys.
type Host struct {
	// ProcSys overrides the sysctl root (tests).
	ProcSys string
}

func (h Host) procSys() string {
	if h.ProcSys != "" {
		return h.ProcSys
	}
	return ProcSys
}

// ErrNotLocal is returned when an interface does not exist.
var ErrNotLocal = errors.New("no such interface")

func link(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var lnf netlink.LinkNotFoundError
		if errors.As(err, &lnf) {
			return nil, fmt.Errorf("%s: %w", name, unix.ENODEV)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// Alias returns the interface alias (ifalias) of dev.
func Alias(dev string) (string, error) {
	l, err := link(dev)
	if err != nil {
		return "", err
	}
	return l.Attrs().Alias, nil
}

// SetAlias sets the alias of dev.
func SetAlias(dev, alias string) error {
	l, err := link(dev)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetAlias(l, alias); err != nil {
		return fmt.Errorf("set alias of %s: %w", dev, err)
	}
	return nil
}

// IsTunTap reports whether dev is a TUN/TAP interface.
func IsTunTap(dev string) (bool, error) {
	l, err := link(dev)
	if err != nil {
		return false, err
	}
	_, ok := l.(*netlink.Tuntap)
	return ok, nil
}

func prefix(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

// AddrUp assigns addr/bits to dev and brings it up, with mtu if > 0 (the
// equivalent of `ifconfig dev addr netmask M [mtu N] up`). An address that is
// already there is not an error.
func AddrUp(dev string, addr netip.Addr, bits, mtu int) error {
	l, err := link(dev)
	if err != nil {
		return err
	}
	if mtu > 0 {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("SIOCSIFMTU: %w", err)
		}
	}
	if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: prefix(addr, bits)}); err != nil {
		return fmt.Errorf("SIOCSIFADDR: %w", err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// FlushDown removes every IPv4 address of dev and sets it down
// (`ifconfig dev 0.0.0.0 down`).
func FlushDown(dev string) error {
	l, err := link(dev)
	if err != nil {
		return err
	}
	addrs, err := netlink.AddrList(l, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("SIOCSIFADDR: %w", err)
		}
	}
	if err := netlink.LinkSetDown(l); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

func hostRoute(dev string, addr netip.Addr) (*netlink.Route, error) {
	l, err := link(dev)
	if err != nil {
		return nil, err
	}
	return &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefix(addr, 32), Scope: netlink.SCOPE_LINK}, nil
}

// AddHostRoute adds the route addr/32 dev dev (`route add -host`).
func AddHostRoute(dev string, addr netip.Addr) error {
	r, err := hostRoute(dev, addr)
	if err != nil {
		return fmt.Errorf("SIOCADDRT: %w", unix.ENODEV)
	}
	if err := netlink.RouteAdd(r); err != nil {
		return fmt.Errorf("SIOCADDRT: %w", err)
	}
	return nil
}

// DelHostRoute deletes the route addr/32 dev dev (`route del -host`).
func DelHostRoute(dev string, addr netip.Addr) error {
	r, err := hostRoute(dev, addr)
	if err != nil {
		return fmt.Errorf("SIOCDELRT: %w", unix.ENODEV)
	}
	if err := netlink.RouteDel(r); err != nil {
		return fmt.Errorf("SIOCDELRT: %w", err)
	}
	return nil
}

// writeSysctl writes v to an existing file under ProcSys (never creating one).
func (h Host) writeSysctl(rel, v string) error {
	p := filepath.Join(h.procSys(), rel)
	f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: p, Err: err}
	}
	return nil
}

// IPForwardPath and ProxyARPPath name the sysctls (relative to ProcSys).
const IPForwardPath = "net/ipv4/ip_forward"

// ProxyARPPath is the proxy_arp sysctl of dev.
func ProxyARPPath(dev string) string { return "net/ipv4/conf/" + dev + "/proxy_arp" }

// SetIPForward writes 1 (or 0) to net.ipv4.ip_forward.
func (h Host) SetIPForward(on bool) error {
	return h.writeSysctl(IPForwardPath, b01(on))
}

// SetProxyARP writes net.ipv4.conf.<dev>.proxy_arp. dev must already be a
// valid interface name (the caller validates it).
func (h Host) SetProxyARP(dev string, on bool) error {
	if dev == "" || dev == "." || dev == ".." || filepath.Base(dev) != dev {
		return fmt.Errorf("proxy_arp: %w", unix.EINVAL)
	}
	return h.writeSysctl(ProxyARPPath(dev), b01(on))
}

func b01(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// MatchingRoutes returns the interfaces (other than exclude) of the IPv4
// main-table routes whose destination equals addr under mask, in table order,
// without duplicates: the interfaces on which a proxy ARP entry for addr is
// published.
func MatchingRoutes(addr, mask netip.Addr, exclude string) ([]string, error) {
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	m := mask.As4()
	a := addr.As4()
	seen := map[string]bool{}
	var out []string
	for _, r := range routes {
		var dst [4]byte
		if r.Dst != nil {
			if ip4 := r.Dst.IP.To4(); ip4 != nil {
				copy(dst[:], ip4)
			}
		}
		match := true
		for i := range 4 {
			if dst[i]&m[i] != a[i]&m[i] {
				match = false
			}
		}
		if !match {
			continue
		}
		l, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		name := l.Attrs().Name
		if name == exclude || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out, nil
}

func proxyNeigh(dev string, addr netip.Addr) (*netlink.Neigh, error) {
	l, err := link(dev)
	if err != nil {
		return nil, err
	}
	return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, Flags: netlink.NTF_PROXY, IP: addr.AsSlice()}, nil
}

// PublishARP adds a proxy ARP entry for addr on dev (`arp -Ds addr dev pub`).
func PublishARP(dev string, addr netip.Addr) error {
	n, err := proxyNeigh(dev, addr)
	if err != nil {
		return err
	}
	if err := netlink.NeighSet(n); err != nil {
		return fmt.Errorf("SIOCSARP: %w", err)
	}
	return nil
}

// UnpublishARP removes the proxy ARP entry for addr on dev
// (`arp -i dev -d addr pub`).
func UnpublishARP(dev string, addr netip.Addr) error {
	n, err := proxyNeigh(dev, addr)
	if err != nil {
		return err
	}
	if err := netlink.NeighDel(n); err != nil {
		return fmt.Errorf("SIOCDARP(pub): %w", err)
	}
	return nil
}

// IsLocalAddr reports whether addr is assigned to any interface of the host.
func IsLocalAddr(addr netip.Addr) (bool, error) {
	addrs, err := netlink.AddrList(nil, unix.AF_INET)
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if b, ok := netip.AddrFromSlice(a.IP); ok && b.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}
