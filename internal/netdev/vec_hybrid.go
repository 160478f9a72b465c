//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// vecN:transport=hybrid,ifname=NAME: a host TAP device for sending and an
// AF_PACKET socket on the same tap for receiving, as UML's vector hybrid
// (net.md §6). The guest's frames are written into the tap (the host
// receives them from it); the frames the host sends out of the tap are
// read from the packet socket, whose filter keeps only those (the guest's
// own frames arrive on the tap and would come back otherwise). P opens
// both in the host's namespace, the socket needing CAP_NET_RAW there, and
// donates the tap as the device's descriptor and the socket as its
// receive side (Opened.Rx, plan.Eth.RxName); options are tap's. Both
// carry vnet headers: the tap has IFF_VNET_HDR and the socket
// PACKET_VNET_HDR (plan.Eth.Vnet).
//
// The host's frames also queue on the tap itself, which nobody reads
// for them: K drains it (hybridTransport.drain) so the tap's queue does
// not sit full of stale frames for the machine's life.

func init() {
	RegisterVector(&Driver{
		Name:   "hybrid",
		Help:   "vecN:transport=hybrid,ifname=<host tap>[,mac=<mac>][,mtu=<n>][,ifup=<program>] (sends into the tap, receives from a packet socket on it; needs CAP_NET_RAW)",
		Parse:  parseVecHybrid,
		Open:   openVecHybrid,
		WrapRx: wrapHybrid,
	})
}

type vecHybridSpec struct {
	vecSpec
	Ifname string
}

func parseVecHybrid(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	if s.args["ifname"] == "" {
		return nil, errors.New("transport=hybrid needs ifname=")
	}
	return vecHybridSpec{vecSpec: s, Ifname: s.args["ifname"]}, nil
}

func openVecHybrid(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecHybridSpec)
	d, err := tuntap.Open(tuntap.Config{Name: s.Ifname, Mode: tuntap.TAP, VnetHdr: true})
	if err != nil {
		return nil, fmt.Errorf("vec%d: tap %s: %w", n, s.Ifname, err)
	}
	if err := d.SetOffload(vnetOffloads); err != nil { // as transport=tap
		d.Close()
		return nil, fmt.Errorf("vec%d: tap %s: %w", n, s.Ifname, err)
	}
	rx, err := openPacketSocket("hybrid", d.Name(), packetOut)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("vec%d: %s: %w", n, s.Ifname, err)
	}
	o, err := openedVec(h, n, "hybrid", s.common, d.File(), nil)
	if err != nil {
		rx.Close()
		return nil, err
	}
	o.Rx = rx
	o.own(func() { rx.Close() })
	runIfup(h, s.common.Ifup, d.Name())
	return o, nil
}

// hybridTransport is K's half: frames go into the tap and come from the
// packet socket.
type hybridTransport struct {
	tap, sock *File
	wg        sync.WaitGroup // drain
}

func wrapHybrid(_ plan.Eth, f, rx *os.File) (Transport, error) {
	tap, err := NewFile(f)
	if err != nil {
		f.Close()
		rx.Close()
		return nil, err
	}
	sock, err := NewFile(rx)
	if err != nil {
		tap.Close()
		rx.Close()
		return nil, err
	}
	t := &hybridTransport{tap: tap, sock: sock}
	t.wg.Add(1)
	go t.drain()
	return t, nil
}

// drain reads and drops what the host queues on the tap (the packet
// socket has it already): the kernel frees each frame whole after copying
// only what the small buffer takes. It ends with the first error: the tap
// closed, or gone from the host (its queue goes with it).
func (t *hybridTransport) drain() {
	defer t.wg.Done()
	var b [64]byte // more than a vnet header, which a read must take
	for {
		if _, err := t.tap.f.Read(b[:]); err != nil {
			return
		}
	}
}

// ReadFrame implements Transport. A packet socket reports the tap going
// down (or being down when it was bound) once, as ENETDOWN, and receives
// again once the tap is up: that is no error of the transport's.
func (t *hybridTransport) ReadFrame(b []byte) (int, error) {
	for {
		n, err := t.sock.ReadFrame(b)
		if !errors.Is(err, unix.ENETDOWN) {
			return n, err
		}
	}
}

// WriteFrame implements Transport.
func (t *hybridTransport) WriteFrame(b []byte) error { return t.tap.WriteFrame(b) }

// Close implements Transport.
func (t *hybridTransport) Close() error {
	err := errors.Join(t.tap.Close(), t.sock.Close())
	t.wg.Wait()
	return err
}
