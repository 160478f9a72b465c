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
	"strings"

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

// Snapshot reads the View of the calling thread's network namespace.
func Snapshot() (View, error) {
	var v View
	links, err := netlink.LinkList()
	if err != nil {
		return v, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		arp := a.RawFlags&unix.IFF_BROADCAST != 0 && a.RawFlags&(unix.IFF_NOARP|unix.IFF_POINTOPOINT|unix.IFF_LOOPBACK) == 0
		v.Links = append(v.Links, Link{Index: a.Index, Name: a.Name, Alias: a.Alias, ARP: arp})
	}
	addrs, err := netlink.AddrList(nil, unix.AF_INET)
	if err != nil {
		return v, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok || a.IPNet == nil {
			continue
		}
		bits, _ := a.Mask.Size()
		v.Addrs = append(v.Addrs, Addr{Prefix: netip.PrefixFrom(ip, bits), Dev: names[a.LinkIndex]})
	}
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return v, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			ip, ok := netip.AddrFromSlice(r.Dst.IP.To4())
			if !ok {
				continue
			}
			bits, _ := r.Dst.Mask.Size()
			dst = netip.PrefixFrom(ip, bits)
		}
		kind := RouteUnicast
		if r.Type != unix.RTN_UNICAST {
			kind = RouteOther
		}
		hop := func(gw net.IP, index int) {
			g, _ := netip.AddrFromSlice(gw.To4())
			v.Routes = append(v.Routes, Route{Dst: dst, Gateway: g, Dev: names[index], Kind: kind})
		}
		if len(r.MultiPath) == 0 {
			hop(r.Gw, r.LinkIndex)
		}
		for _, nh := range r.MultiPath {
			hop(nh.Gw, nh.LinkIndex)
		}
	}
	neighs, err := netlink.NeighList(0, unix.AF_INET)
	if err != nil {
		return v, fmt.Errorf("list neighbours: %w", err)
	}
	const inUse = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP.To4())
		if !ok || n.Flags&netlink.NTF_PROXY != 0 {
			continue
		}
		v.Neighs = append(v.Neighs, Neigh{Addr: ip, Dev: names[n.LinkIndex], InUse: n.State&inUse != 0})
	}
	return v, nil
}

// HasHostRoute reports whether the main table holds addr/32 on dev.
func HasHostRoute(dev string, addr netip.Addr) (bool, error) {
	l, err := link(dev)
	if err != nil {
		return false, err
	}
	routes, err := netlink.RouteListFiltered(unix.AF_INET,
		&netlink.Route{Table: unix.RT_TABLE_MAIN, LinkIndex: l.Attrs().Index, Dst: prefix(addr, 32)},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF|netlink.RT_FILTER_DST)
	if err != nil {
		return false, fmt.Errorf("list routes: %w", err)
	}
	return len(routes) > 0, nil
}

// LinkIndex returns the interface index of dev.
func LinkIndex(dev string) (int, error) {
	l, err := link(dev)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// LinkName returns the name of the interface with index, or ENODEV.
func LinkName(index int) (string, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		var lnf netlink.LinkNotFoundError
		if errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) {
			return "", fmt.Errorf("interface %d: %w", index, unix.ENODEV)
		}
		return "", fmt.Errorf("interface %d: %w", index, err)
	}
	return l.Attrs().Name, nil
}

// ReadSysctl returns the trimmed value of a sysctl (path relative to
// ProcSys).
func (h Host) ReadSysctl(rel string) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.procSys(), rel))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteSysctl writes v to a sysctl (path relative to ProcSys).
func (h Host) WriteSysctl(rel, v string) error { return h.writeSysctl(rel, v) }

// NetnsCookie returns the calling thread's network namespace cookie
// (SO_NETNS_COOKIE): unique for the life of the system, never reused, unlike
// the namespace's inode number.
func NetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt SO_NETNS_COOKIE", err)
	}
	return c, nil
}

// LinkEvents returns a channel that receives the index of every link
// removed from (or renamed in) the calling thread's network namespace until
// done is closed; the channel is closed when the subscription ends.
func LinkEvents(done <-chan struct{}) (<-chan int, error) {
	ch := make(chan netlink.LinkUpdate, 16)
	if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ErrorCallback: func(error) {}}); err != nil {
		return nil, fmt.Errorf("subscribe to link changes: %w", err)
	}
	out := make(chan int, 16)
	go func() {
		defer close(out)
		for u := range ch {
			if u.Header.Type != unix.RTM_DELLINK && u.Header.Type != unix.RTM_NEWLINK {
				continue
			}
			select {
			case out <- int(u.Index):
			case <-done:
				return
			}
		}
	}()
	return out, nil
}
