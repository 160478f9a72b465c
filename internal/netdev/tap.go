//go:build linux

package netdev

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// CreateTap creates the TAP interface name (IFF_TAP|IFF_NO_PI) in the
// calling thread's network namespace with hardware address mac, and
// leaves it down: the guest configures it. The interface exists as long as
// the returned transport is open.
func CreateTap(name string, mac ether.MAC) (*File, error) { return createTap(name, mac, false, false) }

// CreateTapVnet is CreateTap for a transport that carries virtio_net_hdr
// frames (plan.Eth.Vnet): the device puts the header before every frame and
// takes large segments from the host whole; with offload, the guest may
// send partial checksums and 64 KiB TCP segments too, which the transport
// hands on whole (the peer must take them: UML's gro=1).
func CreateTapVnet(name string, mac ether.MAC, offload bool) (*File, error) {
	return createTap(name, mac, true, offload)
}

func createTap(name string, mac ether.MAC, vnetHdr, offload bool) (*File, error) {
	d, err := tuntap.Open(tuntap.Config{Name: name, Mode: tuntap.TAP, VnetHdr: vnetHdr})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	if offload {
		if err := d.SetOffload(vnetOffloads); err != nil {
			d.Close()
			return nil, fmt.Errorf("set up %s: %w", name, err)
		}
	}
	link, err := netlink.LinkByName(d.Name())
	if err == nil {
		err = netlink.LinkSetHardwareAddr(link, net.HardwareAddr(mac[:]))
	}
	if err == nil {
		err = netlink.LinkSetMTU(link, MTU)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("set up %s: %w", name, err)
	}
	return NewFile(d.File())
}

// CreateTun creates the TUN interface name (IFF_TUN|IFF_NO_PI: bare IP
// packets, no link-layer header — UML's slip and slirp devices) in the
// calling thread's network namespace and leaves it down.
func CreateTun(name string) (*File, error) {
	d, err := tuntap.Open(tuntap.Config{Name: name, Mode: tuntap.TUN})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	link, err := netlink.LinkByName(d.Name())
	if err == nil {
		err = netlink.LinkSetMTU(link, MTU)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("set up %s: %w", name, err)
	}
	return NewFile(d.File())
}

// SetMTU sets the MTU of the interface name (a vecN device's mtu=).
func SetMTU(name string, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetMTU(link, mtu)
	}
	if err != nil {
		return fmt.Errorf("set the MTU of %s to %d: %w", name, mtu, err)
	}
	return nil
}

// vnetOffloads are what a vnet device's peer takes: the host kernel, which
// finishes checksums and segments as needed.
const vnetOffloads = tuntap.OffloadCsum | tuntap.OffloadTSO4 | tuntap.OffloadTSO6
