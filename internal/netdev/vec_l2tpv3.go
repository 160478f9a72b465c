//go:build linux

package netdev

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/encap"
)

// vecN:transport=l2tpv3,src=,dst=,rx_session=,tx_session=[,udp=1,srcport=,
// dstport=][,v6=1][,cookie64=1][,rx_cookie=,tx_cookie=][,counter=1]
// [,pin_counter=1]: Ethernet over an L2TPv3 static session (RFC 3931) to
// dst, over IP protocol 115 (a raw socket: CAP_NET_RAW) or UDP, as UML's
// vector l2tpv3 (net.md §6). Both ends must be configured alike: the
// header's layout is not carried in the packets.

func init() {
	RegisterVector(&Driver{
		Name: "l2tpv3",
		Help: "vecN:transport=l2tpv3,src=<addr>,dst=<addr>,rx_session=<n>,tx_session=<n>[,udp=1,srcport=<port>,dstport=<port>]\n" +
			"[,v6=1][,rx_cookie=<n>,tx_cookie=<n>[,cookie64=1]][,counter=1][,pin_counter=1] (Ethernet over L2TPv3)",
		Parse: parseVecL2TPv3,
		Open:  openVecL2TPv3,
		Wrap:  wrapTunnel[l2tpParams],
	})
}

type vecL2TPv3Spec struct {
	vecSpec
	Addrs tunnelAddrs
	Tx    encap.L2TPv3
	Rx    encap.L2TPv3
}

func parseVecL2TPv3(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	a := s.args
	sp := vecL2TPv3Spec{vecSpec: s}
	if sp.Addrs, err = parseTunnelAddrs(a, "l2tpv3"); err != nil {
		return nil, err
	}
	udp := a.flag("udp")
	if udp {
		sp4, err := a.num("srcport", 16, 0)
		if err != nil {
			return nil, err
		}
		dp, err := a.num("dstport", 16, 0)
		if err != nil {
			return nil, err
		}
		if dp == 0 {
			return nil, errors.New("transport=l2tpv3,udp=1 needs dstport=")
		}
		sp.Addrs.SrcPort, sp.Addrs.DstPort = uint16(sp4), uint16(dp)
	}
	if _, ok := a["rx_session"]; !ok {
		return nil, errors.New("transport=l2tpv3 needs rx_session= and tx_session=")
	}
	if _, ok := a["tx_session"]; !ok {
		return nil, errors.New("transport=l2tpv3 needs rx_session= and tx_session=")
	}
	rxs, err := a.num("rx_session", 32, 0)
	if err != nil {
		return nil, err
	}
	txs, err := a.num("tx_session", 32, 0)
	if err != nil {
		return nil, err
	}
	_, hasRxC := a["rx_cookie"]
	_, hasTxC := a["tx_cookie"]
	if hasRxC != hasTxC {
		return nil, errors.New("transport=l2tpv3: give both rx_cookie= and tx_cookie=, or neither")
	}
	c64 := a.flag("cookie64")
	bits := 32
	if c64 {
		bits = 64
	}
	var rxc, txc uint64
	if hasRxC {
		if rxc, err = a.num("rx_cookie", bits, 0); err != nil {
			return nil, err
		}
		if txc, err = a.num("tx_cookie", bits, 0); err != nil {
			return nil, err
		}
	}
	counter := a.flag("counter")
	sp.Tx = encap.L2TPv3{UDP: udp, Session: uint32(txs), Cookie: hasTxC, Cookie64: c64, CookieVal: txc, Counter: counter, PinCounter: a.flag("pin_counter")}
	sp.Rx = encap.L2TPv3{UDP: udp, Session: uint32(rxs), Cookie: hasRxC, Cookie64: c64, CookieVal: rxc, Counter: counter}
	return sp, nil
}

// l2tpParams is what K needs of an l2tpv3 device: both directions' headers.
type l2tpParams struct {
	Tx, Rx encap.L2TPv3
	IPHdr  bool // raw IPv4: received packets carry the IP header
}

func openVecL2TPv3(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecL2TPv3Spec)
	typ, proto := unix.SOCK_RAW, unix.IPPROTO_L2TP
	if s.Tx.UDP {
		typ, proto = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	}
	f, err := openTunnelSocket(s.Addrs, typ, proto, "l2tpv3")
	if err != nil {
		return nil, vecError(n, err)
	}
	return softOffload(openedVec(h, n, "l2tpv3", s.common, f, l2tpParams{Tx: s.Tx, Rx: s.Rx, IPHdr: !s.Tx.UDP && s.Addrs.Dst.Is4()}))
}

func (p *l2tpParams) headers() (tx, rx header, ipHdr bool) { return &p.Tx, &p.Rx, p.IPHdr }
