//go:build linux

package uswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/vxlan"
)

// The VXLAN uplink (docs/uml_switch.md, "VXLAN"): one more port of the
// switch whose far side is a VXLAN segment (RFC 7348) over UDP, like a
// Linux vxlan device enslaved to a bridge. Frames for the port are
// encapsulated and sent to the remote endpoint (VTEP) that the
// destination MAC was last seen behind, or, for broadcast, multicast and
// unknown unicast, to every configured unicast peer (head-end
// replication) and to the multicast group. Frames received are checked
// (header, VNI), their source MAC is remembered behind the datagram's
// outer source (the uplink's forwarding database, aged like the switch's
// MAC table) and they enter the switch as from the uplink port; the
// switch never sends a frame back to the port it came from, so nothing
// received over VXLAN is sent over VXLAN again (split horizon, as between
// the members of a full mesh).
//
// Goroutines: one vxLoop per socket (Run starts them with the tap's
// reader; shutdown ends them with a past read deadline, then closes the
// sockets). Sending happens on the forwarding goroutine (vxSend from
// queue). Locks: fdbMu guards the forwarding database and the remotes;
// sendMu the send buffer and batch. Both are leaves: vxSend takes them
// with macMu held, vxLoop takes fdbMu before and apart from macMu; no
// other lock is taken while either is held.

// VxlanConfig configures the VXLAN uplink.
type VxlanConfig struct {
	// VNI is the VXLAN network identifier (24 bits).
	VNI uint32
	// Peers are unicast remote endpoints (port 0: Port) that get every
	// broadcast, multicast and unknown unicast frame.
	Peers []netip.AddrPort
	// Group is a multicast group that gets those frames too and whose
	// traffic is received (the zero Addr: none).
	Group netip.Addr
	// Local is the address to send from and receive unicast on (the zero
	// Addr: any).
	Local netip.Addr
	// Port is the UDP port to listen on and the default destination port
	// (default vxlan.Port, 4789).
	Port uint16
	// Dev is the interface for the multicast group ("": chosen by route).
	Dev string
	// TTL is the outer TTL / hop limit (0: 1 for multicast, the system's
	// default for unicast).
	TTL int
	// LearnPort learns each remote at its outer source address and port
	// (VDE's vxvde, whose every plug listens on a port of its own). By
	// default a remote is learned at its source address and the port of
	// the configured peer with that address, or Port (Linux's vxlan
	// device sends from varying source ports and listens on its dstport).
	LearnPort bool

	vniSet bool // -vxlan was given (ParseArgs)
}

// vxUplink is the running uplink.
type vxUplink struct {
	cfg    VxlanConfig
	family int // unix.AF_INET or AF_INET6
	hdr    [vxlan.HeaderLen]byte
	socks  []*vxSock // [0] sends and receives; [1], if any, receives the group
	port   *port
	age    time.Duration
	maxMAC int
	local  string // description of the bound address

	flood []*vxRemote // peers and group, the destinations of floods

	fdbMu     sync.Mutex // guards fdb, remotes, lastSweep
	fdb       vxFDB
	remotes   map[netip.AddrPort]*vxRemote // every known remote (configured and learned)
	lastSweep time.Duration

	sendMu sync.Mutex // guards out, mm, sentOK, one
	out    []byte
	mm     sys.Mmsg
	sentOK []bool
	one    [1]*vxRemote

	noGSO                                  atomic.Bool  // the kernel refused UDP_SEGMENT
	gsoMaxSeg                              atomic.Int32 // largest datagram UDP_SEGMENT may carry (refused above)
	wrongVNI, badHeader, csumDone, tsoDone atomic.Uint64
	limVNI, limBad                         limiter
}

// vxSock is one UDP socket of the uplink.
type vxSock struct {
	f  *os.File
	rc syscall.RawConn
}

// vxRemote is a remote endpoint: a configured peer, the group, or one
// learned from received traffic.
type vxRemote struct {
	addr netip.AddrPort
	raw  []byte // its sockaddr
	kind string // "peer", "group" or "learned"
	seen time.Duration

	rxFrames, rxBytes, txFrames, txBytes atomic.Uint64
}

// maxRemotes bounds the learned remotes (each has at least one MAC
// behind it or saw traffic within the aging time).
const maxRemotes = 4096

// vxBatch is the receive batch of an uplink socket.
const vxBatch = 16

// vxFDB is the uplink's forwarding database: which remote each MAC was
// last seen behind, and when (relative to the switch's start).
type vxFDB struct {
	m map[ether.MAC]vxEntry
}

type vxEntry struct {
	r    *vxRemote
	seen time.Duration
}

// learn remembers mac behind r at now; false when the table is full
// (max entries) and mac is new.
func (f *vxFDB) learn(mac ether.MAC, r *vxRemote, now time.Duration, max int) bool {
	if f.m == nil {
		f.m = map[ether.MAC]vxEntry{}
	}
	if _, ok := f.m[mac]; !ok && len(f.m) >= max {
		return false
	}
	f.m[mac] = vxEntry{r, now}
	return true
}

// lookup returns the remote behind mac, or nil when unknown or older than
// age.
func (f *vxFDB) lookup(mac ether.MAC, now, age time.Duration) *vxRemote {
	e, ok := f.m[mac]
	if !ok || now-e.seen > age {
		return nil
	}
	return e.r
}

// sweep deletes the entries older than age.
func (f *vxFDB) sweep(now, age time.Duration) {
	for m, e := range f.m {
		if now-e.seen > age {
			delete(f.m, m)
		}
	}
}

// isClient reports whether p is a client's port (not the tap or the
// VXLAN uplink).
func (p *port) isClient() bool { return p.tap == nil && p.vx == nil }

// openVxlanUplink opens the configured uplink's sockets (nothing runs
// yet). Errors name the option at fault.
func (s *Switch) openVxlanUplink() error {
	if s.cfg.Vxlan == nil {
		return nil
	}
	c := *s.cfg.Vxlan
	if c.Port == 0 {
		c.Port = vxlan.Port
	}
	u := &vxUplink{cfg: c, family: unix.AF_INET, age: s.cfg.AgeLimit, maxMAC: s.cfg.MaxMACs,
		remotes: map[netip.AddrPort]*vxRemote{}, mm: sys.NewMmsg(1)}
	u.gsoMaxSeg.Store(udpMaxPayload)
	if vxFamily(c) == 6 {
		u.family = unix.AF_INET6
	}
	hdr, _ := vxlan.Header{VNI: c.VNI}.AppendBinary(nil)
	copy(u.hdr[:], hdr)
	ifindex := 0
	if c.Dev != "" {
		ifi, err := net.InterfaceByName(c.Dev)
		if err != nil {
			return fmt.Errorf("vxlan: -vxlan-dev %s: %w", c.Dev, unwrapNet(err))
		}
		ifindex = ifi.Index
	}
	bindAddr := c.Local
	if !bindAddr.IsValid() {
		bindAddr = netip.IPv4Unspecified()
		if u.family == unix.AF_INET6 {
			bindAddr = netip.IPv6Unspecified()
		}
	}
	main, err := u.socket(netip.AddrPortFrom(bindAddr, c.Port), ifindex)
	if err != nil {
		return err
	}
	u.socks = append(u.socks, main)
	u.local = netip.AddrPortFrom(bindAddr, c.Port).String()
	if c.Group.IsValid() {
		// A socket bound to a unicast address does not receive the
		// group's datagrams: a second one, bound to the group, does.
		rs := main
		if c.Local.IsValid() {
			if rs, err = u.socket(netip.AddrPortFrom(c.Group, c.Port), ifindex); err != nil {
				u.close()
				return err
			}
			u.socks = append(u.socks, rs)
		}
		if err := u.join(rs, ifindex); err != nil {
			u.close()
			return err
		}
	}
	for _, p := range c.Peers {
		if p.Port() == 0 {
			p = netip.AddrPortFrom(p.Addr(), c.Port)
		}
		if u.remotes[p] != nil {
			continue
		}
		if isOwnAddr(p, c.Port) {
			s.out.printf("VXLAN: ignoring peer %s: it is this switch's own address\n", p)
			continue
		}
		r, err := u.newRemote(p, "peer")
		if err != nil {
			u.close()
			return err
		}
		u.flood = append(u.flood, r)
	}
	if c.Group.IsValid() {
		r, err := u.newRemote(netip.AddrPortFrom(c.Group, c.Port), "group")
		if err != nil {
			u.close()
			return err
		}
		u.flood = append(u.flood, r)
	}
	u.mm = sys.NewMmsg(max(1, len(u.flood)))
	id := -1
	main.rc.Control(func(fd uintptr) { id = int(fd) })
	u.port = &port{id: id, vx: u}
	s.vx = u
	return nil
}

// vxFamily is 6 when the configuration's addresses are IPv6 (ParseArgs
// checks that they agree), else 4.
func vxFamily(c VxlanConfig) int {
	for _, a := range append([]netip.Addr{c.Local, c.Group}, addrsOf(c.Peers)...) {
		if a.IsValid() {
			if a.Is6() && !a.Is4In6() {
				return 6
			}
			return 4
		}
	}
	return 4
}

func addrsOf(ps []netip.AddrPort) []netip.Addr {
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out
}

func unwrapNet(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// socket opens a UDP socket bound to addr, with the uplink's TTL and
// multicast sending settings.
func (u *vxUplink) socket(addr netip.AddrPort, ifindex int) (*vxSock, error) {
	fd, err := unix.Socket(u.family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("vxlan: %w", os.NewSyscallError("socket", err))
	}
	fail := func(what string, err error) (*vxSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("vxlan: %s: %w", what, err)
	}
	c := u.cfg
	mttl := c.TTL
	if mttl == 0 {
		mttl = 1
	}
	if u.family == unix.AF_INET6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		if c.TTL != 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, c.TTL); err != nil {
				return fail("IPV6_UNICAST_HOPS", err)
			}
		}
		if c.Group.IsValid() {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, mttl); err != nil {
				return fail("IPV6_MULTICAST_HOPS", err)
			}
			// Our own datagrams to the group are not for us; nor are
			// groups other sockets of the host joined.
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0)
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
			if ifindex != 0 {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex); err != nil {
					return fail("-vxlan-dev: IPV6_MULTICAST_IF", err)
				}
			}
		}
	} else {
		if c.TTL != 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, c.TTL); err != nil {
				return fail("IP_TTL", err)
			}
		}
		if c.Group.IsValid() {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, mttl); err != nil {
				return fail("IP_MULTICAST_TTL", err)
			}
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
			if ifindex != 0 || c.Local.IsValid() {
				mreq := &unix.IPMreqn{Ifindex: int32(ifindex)}
				if c.Local.IsValid() {
					mreq.Address = c.Local.As4()
				}
				if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
					return fail("IP_MULTICAST_IF", err)
				}
			}
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBufSize)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBufSize)
	}
	if err := sys.BindRaw(fd, rawSockaddr(addr, 0)); err != nil {
		return fail("bind "+addr.String(), err)
	}
	f := os.NewFile(uintptr(fd), "vxlan "+addr.String())
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vxlan: %w", err)
	}
	return &vxSock{f: f, rc: rc}, nil
}

// join makes vs a member of the group (on ifindex, or the interface the
// route to the group names).
func (u *vxUplink) join(vs *vxSock, ifindex int) error {
	var serr error
	err := vs.rc.Control(func(fd uintptr) {
		if u.family == unix.AF_INET6 {
			mreq := &unix.IPv6Mreq{Multiaddr: u.cfg.Group.As16(), Interface: uint32(ifindex)}
			serr = unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq)
			return
		}
		mreq := &unix.IPMreqn{Multiaddr: u.cfg.Group.As4(), Ifindex: int32(ifindex)}
		if u.cfg.Local.IsValid() {
			mreq.Address = u.cfg.Local.As4()
		}
		serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		hint := ""
		if errors.Is(err, unix.ENODEV) && u.cfg.Dev == "" {
			hint = " (no route to the group: give -vxlan-dev, or add one, e.g. ip route add 224.0.0.0/4 dev eth0)"
		}
		return fmt.Errorf("vxlan: -vxlan-group %s: join: %w%s", u.cfg.Group, err, hint)
	}
	return nil
}

// isOwnAddr reports whether ap is this host's address at the uplink's
// own port (a peer list shared by every host names each one too).
func isOwnAddr(ap netip.AddrPort, port uint16) bool {
	if ap.Port() != port {
		return false
	}
	if ap.Addr().IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == ap.Addr().Unmap() {
				return true
			}
		}
	}
	return false
}

// newRemote records the configured remote ap (fdbMu not needed: nothing
// runs yet).
func (u *vxUplink) newRemote(ap netip.AddrPort, kind string) (*vxRemote, error) {
	var scope uint32
	if z := ap.Addr().Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return nil, fmt.Errorf("vxlan: -vxlan-peer %s: %w", ap, unwrapNet(err))
		}
		scope = uint32(ifi.Index)
	}
	r := &vxRemote{addr: ap, raw: rawSockaddr(ap, scope), kind: kind}
	u.remotes[ap] = r
	return r, nil
}

// rawSockaddr is ap as a struct sockaddr_in or sockaddr_in6.
func rawSockaddr(ap netip.AddrPort, scope uint32) []byte {
	a := ap.Addr()
	if a.Is4() {
		b := make([]byte, unix.SizeofSockaddrInet4)
		binary.NativeEndian.PutUint16(b[0:], unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		a4 := a.As4()
		copy(b[4:8], a4[:])
		return b
	}
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b[0:], unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a16 := a.As16()
	copy(b[8:24], a16[:])
	binary.NativeEndian.PutUint32(b[24:], scope)
	return b
}

// parseSockaddr decodes a sockaddr_in or sockaddr_in6 (zone dropped).
func parseSockaddr(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	port := func() uint16 { return binary.BigEndian.Uint16(b[2:4]) }
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port()), true
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port()), true
	}
	return netip.AddrPort{}, false
}

// close closes the sockets (the loops, if running, end).
func (u *vxUplink) close() {
	for _, vs := range u.socks {
		vs.f.Close()
	}
}

// stop ends the receive loops.
func (u *vxUplink) stop() {
	for _, vs := range u.socks {
		vs.f.SetReadDeadline(time.Unix(1, 0))
	}
}

// describe is the port's name in the SIGUSR1 lines.
func (u *vxUplink) describe() string {
	return "vxlan vni " + strconv.FormatUint(uint64(u.cfg.VNI), 10) + " udp " + u.local
}

// startLine is what Listen prints about the uplink.
func (u *vxUplink) startLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VXLAN uplink: vni %d, udp %s", u.cfg.VNI, u.local)
	var peers []string
	for _, r := range u.flood {
		if r.kind == "peer" {
			peers = append(peers, r.addr.String())
		}
	}
	if len(peers) > 0 {
		b.WriteString(", peers " + strings.Join(peers, " "))
	}
	if u.cfg.Group.IsValid() {
		fmt.Fprintf(&b, ", group %s", u.cfg.Group)
		if u.cfg.Dev != "" {
			b.WriteString(" dev " + u.cfg.Dev)
		}
	}
	if u.cfg.LearnPort {
		b.WriteString(", learning source ports")
	}
	return b.String() + "\n"
}

// remoteFor returns the remote that sent from src, learning it if new
// (fdbMu held); nil when the table of remotes is full.
func (u *vxUplink) remoteFor(src netip.AddrPort, now time.Duration) *vxRemote {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	key := src
	if r := u.remotes[key]; r != nil {
		r.seen = now
		return r
	}
	if !u.cfg.LearnPort {
		// Linux's vxlan sends from a port chosen per flow: the remote is
		// its address, reached at its configured port or ours.
		key = netip.AddrPortFrom(src.Addr(), u.cfg.Port)
		for _, r := range u.flood {
			if r.kind == "peer" && r.addr.Addr() == src.Addr() {
				key = r.addr
				break
			}
		}
		if r := u.remotes[key]; r != nil {
			r.seen = now
			return r
		}
	}
	if len(u.remotes) >= maxRemotes+len(u.flood) {
		return nil
	}
	r := &vxRemote{addr: key, raw: rawSockaddr(key, 0), kind: "learned", seen: now}
	u.remotes[key] = r
	return r
}

// sweep forgets aged MACs and the learned remotes with no MAC left that
// were quiet for the aging time (fdbMu held).
func (u *vxUplink) sweep(now time.Duration) {
	u.lastSweep = now
	u.fdb.sweep(now, u.age)
	used := map[*vxRemote]bool{}
	for _, e := range u.fdb.m {
		used[e.r] = true
	}
	for k, r := range u.remotes {
		if r.kind == "learned" && !used[r] && now-r.seen > u.age {
			delete(u.remotes, k)
		}
	}
}

// vxLoop receives on one of the uplink's sockets until it is closed or
// its deadline passes.
func (s *Switch) vxLoop(u *vxUplink, vs *vxSock) {
	p := u.port
	// Each slot: headroom, room for a vnet header, then the datagram so
	// that the frame after its VXLAN header starts at 2*headroom. A plain
	// frame is forwarded from slot[headroom:] (headroom before it, as on
	// the other ports); one that needs a vnet header (tsoHdr) gets it at
	// slot[headroom:] and is forwarded from slot[0:].
	const slot = bufSize + headroom
	const at = 2*headroom - vxlan.HeaderLen
	mm := sys.NewMmsg(vxBatch)
	bufs := make([]byte, vxBatch*slot)
	var names [vxBatch][unix.SizeofSockaddrInet6]byte
	for i := range vxBatch {
		mm.Set(i, bufs[i*slot+at:(i+1)*slot], names[i][:])
	}
	var n int
	var rerr error
	readFn := func(fd uintptr) bool {
		for i := range vxBatch {
			h := &mm.Hdrs[i].Hdr
			h.Namelen = uint32(len(names[i]))
			h.Flags = 0
		}
		n, rerr = mm.Recvmmsg(int(fd), 0, vxBatch, unix.MSG_DONTWAIT)
		return !errors.Is(rerr, unix.EAGAIN)
	}
	tx := newTxBatch()
	var frames [vxBatch][]byte // the accepted frames of a batch (nil: dropped)
	var vnet [vxBatch]bool
	for {
		if err := vs.rc.Read(readFn); err != nil {
			return
		}
		if rerr != nil {
			s.limited(&s.limBad, s.err, "Reading VXLAN socket: %s\n", sys.Strerror(rerr))
			continue
		}
		now := time.Since(s.start)
		u.fdbMu.Lock()
		for i := 0; i < n; i++ {
			frames[i], vnet[i] = nil, false
			h := &mm.Hdrs[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				u.badHeader.Add(1)
				p.drops.Add(1)
				continue
			}
			dgram := bufs[i*slot+at : i*slot+at+int(h.Len)]
			from, _ := parseSockaddr(names[i][:min(int(h.Hdr.Namelen), len(names[i]))])
			frame, ok := s.vxCheck(u, dgram, from)
			if !ok {
				continue
			}
			if gh, ok := tsoHdr(frame); ok {
				gh.Put(bufs[i*slot+headroom : i*slot+2*headroom])
				vnet[i] = true
				u.tsoDone.Add(1)
			} else if completePartial(frame) {
				u.csumDone.Add(1)
			}
			r := u.remoteFor(from, now)
			if r != nil {
				r.rxFrames.Add(1)
				r.rxBytes.Add(uint64(len(frame)))
				if src := ether.MAC(frame[ether.OffSrc : ether.OffSrc+ether.AddrLen]); !src.IsMulticast() {
					u.fdb.learn(src, r, now, u.maxMAC)
				}
			}
			p.rxFrames.Add(1)
			p.rxBytes.Add(uint64(len(frame)))
			frames[i] = frame
		}
		if now-u.lastSweep >= sweepEvery {
			u.sweep(now)
		}
		u.fdbMu.Unlock()
		ps := s.ports.Load()
		s.macMu.Lock()
		for i := 0; i < n; i++ {
			if frames[i] == nil {
				continue
			}
			if tx.n+len(ps.list) > txBatchSize {
				s.macMu.Unlock()
				s.flush(tx)
				s.macMu.Lock()
			}
			end := i*slot + 2*headroom + len(frames[i])
			buf := bufs[i*slot+headroom : end]
			if vnet[i] {
				buf = bufs[i*slot : end]
			}
			s.forward(p, ps, tx.packet(buf, frames[i], vnet[i]), now, tx)
		}
		s.macMu.Unlock()
		s.flush(tx)
	}
}

// vxCheck validates one received datagram and returns its frame; dropped
// datagrams are counted (and logged, rate-limited).
func (s *Switch) vxCheck(u *vxUplink, dgram []byte, from netip.AddrPort) ([]byte, bool) {
	h, frame, err := vxlan.Decode(dgram)
	switch {
	case err != nil:
		u.badHeader.Add(1)
		u.port.drops.Add(1)
		s.limited(&u.limBad, s.err, "VXLAN datagram from %s dropped: %v\n", from, err)
		return nil, false
	case h.VNI != u.cfg.VNI:
		u.wrongVNI.Add(1)
		u.port.drops.Add(1)
		s.limited(&u.limVNI, s.err, "VXLAN frame for VNI %d from %s dropped (ours is %d)\n", h.VNI, from, u.cfg.VNI)
		return nil, false
	case len(frame) == 0:
		// A header alone: VDE's vxvde announces itself so. Nothing to
		// forward, nothing wrong.
		return nil, false
	case len(frame) < switchproto.MinFrame:
		u.badHeader.Add(1)
		u.port.drops.Add(1)
		s.limited(&u.limBad, s.err, "Short VXLAN frame of %d bytes from %s dropped\n", len(frame), from)
		return nil, false
	}
	return frame, true
}

// vxSend encapsulates frames (the standard forms of one packet, all for
// one destination MAC) and sends them to the remote that MAC was learned
// behind, or floods them to the peers and the group: one sendmmsg for all.
// Called from queue (macMu held); a full socket buffer drops what did not
// fit, as a NIC's full queue would.
func (s *Switch) vxSend(p *port, frames [][]byte) {
	u := p.vx
	f0 := frames[0]
	dst := ether.MAC(f0[ether.OffDst : ether.OffDst+ether.AddrLen])
	var one *vxRemote
	if !dst.IsMulticast() {
		u.fdbMu.Lock()
		one = u.fdb.lookup(dst, time.Since(s.start), u.age)
		u.fdbMu.Unlock()
	}
	if one == nil && len(u.flood) == 0 {
		p.drops.Add(uint64(len(frames)))
		return
	}
	u.sendMu.Lock()
	defer u.sendMu.Unlock()
	dests := u.flood
	if one != nil {
		u.one[0] = one
		dests = u.one[:]
	}
	size, n := 0, len(frames)*len(dests)
	for _, f := range frames {
		size += vxlan.HeaderLen + len(f)
	}
	if cap(u.out) < size {
		u.out = make([]byte, size)
	}
	if len(u.mm.Hdrs) < n {
		u.mm = sys.NewMmsg(n)
		u.sentOK = make([]bool, len(frames))
	}
	if len(u.sentOK) < len(frames) {
		u.sentOK = make([]bool, len(frames))
	}
	out := u.out[:size]
	k := 0
	for i, f := range frames {
		b := out[:vxlan.HeaderLen+len(f)]
		out = out[len(b):]
		copy(b, u.hdr[:])
		copy(b[vxlan.HeaderLen:], f)
		for _, r := range dests {
			u.mm.Set(k, b, r.raw)
			k++
		}
		u.sentOK[i] = false
	}
	var serr error
	u.socks[0].rc.Control(func(fd uintptr) {
		if len(frames) > 1 && !u.noGSO.Load() && u.sendSegments(int(fd), frames, dests) {
			return
		}
		for next := 0; next < n; {
			c, err := u.mm.Sendmmsg(int(fd), next, n-next, unix.MSG_DONTWAIT)
			if err != nil {
				// The error is the first unsent message's: skip it.
				serr = err
				next++
				continue
			}
			for m := next; m < next+c; m++ {
				r := dests[m%len(dests)]
				l := uint64(u.mm.BufLen(m) - vxlan.HeaderLen)
				r.txFrames.Add(1)
				r.txBytes.Add(l)
				u.sentOK[m/len(dests)] = true
			}
			next += c
		}
	})
	if serr != nil && !errors.Is(serr, unix.EAGAIN) && !errors.Is(serr, unix.ENOBUFS) {
		s.limited(&s.limSend, s.err, "VXLAN send: %s\n", sys.Strerror(serr))
	}
	for i, f := range frames {
		if !u.sentOK[i] {
			p.drops.Add(1)
			continue
		}
		p.txFrames.Add(1)
		p.txBytes.Add(uint64(len(f)))
	}
}

// Sending the segments of one packet with UDP GSO (UDP_SEGMENT): the
// datagrams [header|segment] are equally long but the last, so the kernel
// takes a run of them in one send and cuts it as late as it can (on the
// veth's far side, or in the NIC).
const (
	udpMaxSegments = 64    // the kernel's UDP_MAX_SEGMENTS before 6.x (128 since)
	udpMaxPayload  = 65507 // an IPv4 datagram's largest UDP payload
)

// sendSegments sends frames (encapsulated in u.out, as vxSend lays them
// out) to every dest with UDP_SEGMENT, marking u.sentOK; false, having
// sent nothing, when the frames are not equally long, are longer than a
// size refused before, or the kernel refuses the first send.
func (u *vxUplink) sendSegments(fd int, frames [][]byte, dests []*vxRemote) bool {
	seg := vxlan.HeaderLen + len(frames[0])
	for _, f := range frames[1 : len(frames)-1] {
		if vxlan.HeaderLen+len(f) != seg {
			return false
		}
	}
	if vxlan.HeaderLen+len(frames[len(frames)-1]) > seg {
		return false
	}
	per := min(udpMaxSegments, udpMaxPayload/seg)
	if per < 2 || int32(seg) > u.gsoMaxSeg.Load() {
		return false
	}
	var oob [32]byte
	ctl := oob[:unix.CmsgSpace(2)]
	putCmsgU16(ctl, unix.SOL_UDP, unix.UDP_SEGMENT, uint16(seg))
	total := 0
	for _, f := range frames {
		total += vxlan.HeaderLen + len(f)
	}
	out := u.out[:total]
	for _, r := range dests {
		for i := 0; i < len(frames); i += per {
			j := min(i+per, len(frames))
			b := out[i*seg : min(j*seg, total)]
			if err := sys.SendmsgRaw(fd, b, ctl, unix.MSG_DONTWAIT, r.raw); err != nil {
				if i == 0 && r == dests[0] && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ENOBUFS) {
					// Nothing sent yet: let sendmmsg send them one by one.
					// EMSGSIZE/EINVAL: a segment does not fit the path's
					// MTU (the datagrams are to be fragmented, which GSO
					// does not do); not for this size again. Anything
					// else: the kernel cannot.
					if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.EINVAL) {
						u.gsoMaxSeg.Store(int32(seg - 1))
					} else {
						u.noGSO.Store(true)
					}
					return false
				}
				continue // dropped, as a full queue would
			}
			r.txFrames.Add(uint64(j - i))
			r.txBytes.Add(uint64(len(b) - (j-i)*vxlan.HeaderLen))
			for k := i; k < j; k++ {
				u.sentOK[k] = true
			}
		}
	}
	return true
}

// putCmsgU16 writes one control message of level and typ carrying v into
// b (unix.CmsgSpace(2) bytes): struct cmsghdr is {size_t len; int level;
// int type} and the data follows at CmsgLen(0).
func putCmsgU16(b []byte, level, typ int, v uint16) {
	clear(b)
	at := 4
	if strconv.IntSize == 64 {
		binary.NativeEndian.PutUint64(b, uint64(unix.CmsgLen(2)))
		at = 8
	} else {
		binary.NativeEndian.PutUint32(b, uint32(unix.CmsgLen(2)))
	}
	binary.NativeEndian.PutUint32(b[at:], uint32(level))
	binary.NativeEndian.PutUint32(b[at+4:], uint32(typ))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], v)
}

// logVxlan prints the uplink's remotes and counters after the port
// lines of SIGUSR1.
func (s *Switch) logVxlan(u *vxUplink) {
	now := time.Since(s.start)
	u.fdbMu.Lock()
	u.sweep(now)
	macs := map[*vxRemote][]ether.MAC{}
	for m, e := range u.fdb.m {
		macs[e.r] = append(macs[e.r], m)
	}
	rs := make([]*vxRemote, 0, len(u.remotes))
	for _, r := range u.remotes {
		rs = append(rs, r)
	}
	nmac := len(u.fdb.m)
	u.fdbMu.Unlock()
	order := map[string]int{"peer": 0, "group": 1, "learned": 2}
	slices.SortFunc(rs, func(a, b *vxRemote) int {
		if d := order[a.kind] - order[b.kind]; d != 0 {
			return d
		}
		return a.addr.Compare(b.addr)
	})
	s.out.printf("VXLAN vni %d: %d remotes, %d MACs learned, %d frames of other VNIs, %d bad datagrams, offloads finished: %d checksums, %d TSO frames\n",
		u.cfg.VNI, len(rs), nmac, u.wrongVNI.Load(), u.badHeader.Load(), u.csumDone.Load(), u.tsoDone.Load())
	for _, r := range rs {
		ms := macs[r]
		slices.SortFunc(ms, func(a, b ether.MAC) int { return strings.Compare(string(a[:]), string(b[:])) })
		var b strings.Builder
		fmt.Fprintf(&b, "Remote %s (%s): rx %d frames %d bytes, tx %d frames %d bytes, %d MACs",
			r.addr, r.kind, r.rxFrames.Load(), r.rxBytes.Load(), r.txFrames.Load(), r.txBytes.Load(), len(ms))
		const show = 16
		for i, m := range ms {
			if i == show {
				fmt.Fprintf(&b, " and %d more", len(ms)-show)
				break
			}
			b.WriteByte(' ')
			b.WriteString(m.String())
		}
		s.out.printf("%s\n", b.String())
	}
}
