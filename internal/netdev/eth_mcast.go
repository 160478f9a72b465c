//go:build linux

package netdev

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/linux/plan"
)

// ethN=mcast,<mac>,<group>,<port>,<ttl>: every device on one IPv4
// multicast group and port is on one LAN (net.md §2). P opens the socket
// in the host's namespace; K sends frames to the group.

func init() {
	Register(&Driver{
		Name: "mcast",
		Help: "mcast[,<mac>[,<group>[,<port>[,<ttl>]]]] (default " + DefaultMcastGroup + ", " +
			strconv.Itoa(DefaultMcastPort) + ", " + strconv.Itoa(DefaultMcastTTL) + ")",
		Parse: parseMcast,
		Open:  openMcast,
		Wrap:  wrapDatagram,
	})
}

type mcastSpec struct {
	MAC, Group string
	Port, TTL  int
}

func (s mcastSpec) Fields() []string {
	return []string{s.MAC, s.Group, strconv.Itoa(s.Port), strconv.Itoa(s.TTL)}
}

func parseMcast(f []string) (Spec, error) {
	if len(f) > 4 {
		return nil, fmt.Errorf("mcast_setup - Extra garbage on specification : '%s'", strings.Join(f[4:], ","))
	}
	s := mcastSpec{MAC: field(f, 0), Group: DefaultMcastGroup, Port: DefaultMcastPort, TTL: DefaultMcastTTL}
	if g := field(f, 1); g != "" {
		s.Group = g
	}
	if p := field(f, 2); p != "" {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("mcast_setup - Bad port : '%s'", p)
		}
		s.Port = int(v)
	}
	if p := field(f, 3); p != "" {
		v, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("mcast_setup - Bad ttl : '%s'", p)
		}
		s.TTL = int(v)
	}
	return s, nil
}

// datagramParams is where K sends the frames of mcast and ucast devices.
type datagramParams struct {
	Group string `json:"group"` // mcast: the group; ucast: the peer
	Port  int    `json:"port"`
}

func openMcast(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(mcastSpec)
	h.logf("Configured mcast device: %s:%d-%d", s.Group, s.Port, s.TTL)
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	h.logf("mcast backend multicast address: %s:%d, TTL:%d", s.Group, s.Port, s.TTL)
	addr, err := netip.ParseAddr(s.Group)
	if err != nil || !addr.Is4() {
		return nil, fmt.Errorf("eth%d: mcast group '%s' is not an IPv4 address", n, s.Group)
	}
	sock, err := OpenMcast(addr, s.Port, s.TTL)
	if err != nil {
		return nil, err
	}
	return newOpened(n, "mcast", mac, sock, datagramParams{Group: s.Group, Port: s.Port})
}

func wrapDatagram(e plan.Eth, f *os.File) (Transport, error) {
	var p datagramParams
	if err := params(e, &p); err != nil {
		f.Close()
		return nil, err
	}
	addr, err := netip.ParseAddr(p.Group)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eth%d: %w", e.Unit, err)
	}
	return NewDatagram(f, addr, p.Port)
}
