//go:build linux

package netdev

import (
	"crypto/rand"
	"fmt"
	"os/exec"

	"github.com/umlkit/umlkit/internal/tuntap"
)

// vecN:transport=tap,ifname=NAME: a host TAP device, as UML's vector tap
// (net.md §6). P opens it in the host's namespace (a persistent tap the
// user owns, or a new one when P may create it); without ifname= it is
// named tap + 6 random characters. K relays the guest's vecN to it.

func init() {
	RegisterVector(&Driver{
		Name:  "tap",
		Help:  "vecN:transport=tap[,ifname=<host tap>][,mac=<mac>][,mtu=<n>][,ifup=<program>] (a host tap)",
		Parse: parseVecTap,
		Open:  openVecTap,
		Wrap:  wrapFile,
	})
}

type vecTapSpec struct {
	vecSpec
	Ifname string
}

func parseVecTap(f []string) (Spec, error) {
	s, err := newVecSpec(f)
	if err != nil {
		return nil, err
	}
	return vecTapSpec{vecSpec: s, Ifname: s.args["ifname"]}, nil
}

// randomTapName is UML's name for a tap without ifname=: "tap" and six
// characters of 0-9A-Z.
func randomTapName() string {
	const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [6]byte
	rand.Read(b[:])
	name := []byte("tap")
	for _, c := range b {
		name = append(name, chars[int(c)%len(chars)])
	}
	return string(name)
}

func openVecTap(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(vecTapSpec)
	name := s.Ifname
	if name == "" {
		name = randomTapName()
	}
	d, err := tuntap.Open(tuntap.Config{Name: name, Mode: tuntap.TAP, VnetHdr: true})
	if err != nil {
		return nil, fmt.Errorf("vec%d: tap %s: %w", n, name, err)
	}
	// As UML's vector tap: the host hands over partial checksums and
	// large segments, which pass to the guest whole (plan.Eth.Vnet).
	if err := d.SetOffload(vnetOffloads); err != nil {
		d.Close()
		return nil, fmt.Errorf("vec%d: tap %s: %w", n, name, err)
	}
	o, err := openedVec(h, n, "tap", s.common, d.File(), nil)
	if err != nil {
		return nil, err
	}
	o.kpath = kpathTarget{kpathTap, d.Name()}
	runIfup(h, s.common.Ifup, d.Name())
	return o, nil
}

// runIfup runs a vector device's ifup= program with the host interface's
// name, as UML does for tap, raw and hybrid.
func runIfup(h *Host, prog, ifname string) {
	if prog == "" {
		return
	}
	cmd := exec.Command(prog, ifname)
	cmd.Stdout, cmd.Stderr = h.Stderr, h.Stderr
	if err := cmd.Run(); err != nil {
		h.logf("vector: ifup %s %s: %v", prog, ifname, err)
	}
}
