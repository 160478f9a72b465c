package kside

import (
	"fmt"
	"net"
	"os"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/netdev"
)

// startNet creates each ethN device of the plan in the guest's network
// namespace and starts its relay (or takes the device P made for its
// kernel data path); it returns a function stopping them.
func (k *kernel) startNet(files map[string]*os.File) func() {
	for _, e := range k.plan.Eth {
		if err := k.addEth(e, files[e.Name()], files[e.RxName()]); err != nil {
			k.logf("%s: %v", e.Name(), err)
		}
	}
	return func() {
		k.ethMu.Lock()
		defer k.ethMu.Unlock()
		for unit, r := range k.relays {
			r.Stop()
			delete(k.relays, unit)
		}
	}
}

// addEth creates ethN for e in the guest's network namespace and relays it
// to the host side f (and rx, the receive side of a transport that has
// one; else nil) with e's transport (boot, or mconsole hot-plug).
func (k *kernel) addEth(e plan.Eth, f, rx *os.File) error {
	d := netdev.DriverOf(e)
	if d == nil {
		closeFiles(f, rx)
		return fmt.Errorf("unknown transport %q", e.Transport)
	}
	if e.KPath {
		// P joined the device to its host interface in the kernel: the
		// guest's end is here already, and K has nothing to relay.
		if kd, err := netdev.AdoptKernelDev(e.Name()); err == nil {
			closeFiles(f, rx)
			if !e.Offload {
				// As K's TAP would have been: no large segments out.
				if err := kd.OffloadsOff(); err != nil {
					k.logf("%s: %v", e.Name(), err)
				}
			}
			k.addDev(e.Name(), kd)
			return nil
		}
		// P could not build the path (its boot log says why): relay.
	}
	tr, err := d.WrapHost(e, f, rx)
	if err != nil {
		return err
	}
	tr = netdev.ForGuest(e, tr)
	var tap *netdev.File
	switch {
	case d.L3:
		tap, err = netdev.CreateTun(e.Name())
	case netdev.GuestVnet(e):
		tap, err = netdev.CreateTapVnet(e.Name(), e.MAC, e.Offload)
	default:
		tap, err = netdev.CreateTap(e.Name(), e.MAC)
	}
	if err == nil && e.MTU != 0 && e.MTU != netdev.MTU {
		if err = netdev.SetMTU(e.Name(), e.MTU); err != nil {
			tap.Close()
		}
	}
	if err != nil {
		tr.Close()
		return err
	}
	k.addDev(e.Name(), netdev.StartDevice(tap, tr))
	return nil
}

// ethDev is a running network device: a relay, or a device of the kernel
// data path. Stop ends it and deletes the guest's interface.
type ethDev interface{ Stop() error }

// addDev records the running device name.
func (k *kernel) addDev(name string, d ethDev) {
	k.ethMu.Lock()
	defer k.ethMu.Unlock()
	if k.relays == nil {
		k.relays = map[string]ethDev{}
	}
	k.relays[name] = d
}

// removeEth stops ethN's relay, which deletes the device, unless the
// guest has the interface up (plan.ErrBusy): UML's rule for removing a
// device.
func (k *kernel) removeEth(name string) error {
	k.ethMu.Lock()
	defer k.ethMu.Unlock()
	r := k.relays[name]
	if r == nil {
		return plan.Errorf(plan.CodeNoDevice, "Device doesn't exist")
	}
	if ifc, err := net.InterfaceByName(name); err == nil && ifc.Flags&net.FlagUp != 0 {
		return plan.ErrBusy
	}
	delete(k.relays, name)
	return r.Stop()
}

// closeFiles closes the files that are not nil.
func closeFiles(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
