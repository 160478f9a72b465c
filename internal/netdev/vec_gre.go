//go:build linux

package netdev

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/encap"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// vecN:transport=gre,src=,dst=[,v6=1][,rx_key=,tx_key=][,sequence=1]
// [,pin_sequence=1]: Ethernet over GRE (protocol 0x6558) to dst, as UML's
// vector gre (net.md §6), on a raw IP socket P opens in the host's
// namespace (CAP_NET_RAW). It talks to UML and to the Linux kernel's
// gretap devices.

func init() {
	RegisterVector(&Driver{
		Name: "gre",
		Help: "vecN:transport=gre,src=<addr>,dst=<addr>[,v6=1][,rx_key=<n>,tx_key=<n>][,sequence=1][,pin_sequence=1]\n" +
			"(Ethernet over GRE; needs CAP_NET_RAW)",
		Parse: parseVecGRE,
		Open:  openVecGRE,
		Wrap:  wrapTunnel[greParams],
	})
}

type vecGRESpec struct {
	vecSpec
	Addrs tunnelAddrs
	Tx    encap.GRE
	Rx    encap.GRE
}

func parseVecGRE(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	sp := vecGRESpec{vecSpec: s}
	if sp.Addrs, err = parseTunnelAddrs(s.args, "gre"); err != nil {
		return nil, err
	}
	_, hasRx := s.args["rx_key"]
	_, hasTx := s.args["tx_key"]
	if hasRx != hasTx {
		return nil, errors.New("transport=gre: give both rx_key= and tx_key=, or neither")
	}
	if hasRx {
		rx, err := s.args.num("rx_key", 32, 0)
		if err != nil {
			return nil, err
		}
		tx, err := s.args.num("tx_key", 32, 0)
		if err != nil {
			return nil, err
		}
		sp.Rx.Key, sp.Rx.KeyValue = true, uint32(rx)
		sp.Tx.Key, sp.Tx.KeyValue = true, uint32(tx)
	}
	sp.Tx.Sequence = s.args.flag("sequence")
	sp.Tx.PinSequence = s.args.flag("pin_sequence")
	return sp, nil
}

// greParams is what K needs of a gre device: both directions' headers.
type greParams struct {
	Tx, Rx encap.GRE
	V4     bool
}

func openVecGRE(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecGRESpec)
	f, err := openTunnelSocket(s.Addrs, unix.SOCK_RAW, unix.IPPROTO_GRE, "gre")
	if err != nil {
		return nil, vecError(n, err)
	}
	return softOffload(openedVec(h, n, "gre", s.common, f, greParams{Tx: s.Tx, Rx: s.Rx, V4: s.Addrs.Dst.Is4()}))
}

func (p *greParams) headers() (tx, rx header, ipHdr bool) { return &p.Tx, &p.Rx, p.V4 }

// vecError names the device in a host-side failure.
func vecError(n int, err error) error { return &vecErr{n, err} }

type vecErr struct {
	n   int
	err error
}

func (e *vecErr) Error() string { return plan.DevName(true, e.n) + ": " + e.err.Error() }
func (e *vecErr) Unwrap() error { return e.err }
