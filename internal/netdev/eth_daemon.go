//go:build linux

package netdev

import (
	"fmt"
	"os"
	"strings"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/switchproto"
)

// ethN=daemon,<mac>,<socktype>,<ctl>[,<data>]: a port of a uml_switch
// (switch.md §2-§3). P connects to the switch's control socket in the
// host's namespace and hands K the data socket; K sends frames to the
// switch's data address.

func init() {
	Register(&Driver{
		Name: "daemon",
		Help: "daemon[,<mac>[,unix[,<control socket>]]] (a uml_switch; default control socket\n" +
			DefaultSwitchCtl + ")",
		Parse: parseDaemon,
		Open:  openDaemon,
		Wrap:  wrapDaemon,
	})
}

type daemonSpec struct {
	MAC, Type, Ctl string
	Data           string // ignored, as UML ignores it (with a message)
}

func (s daemonSpec) Fields() []string {
	f := []string{s.MAC, s.Type, s.Ctl}
	if s.Data != "" {
		f = append(f, s.Data)
	}
	return f
}

func parseDaemon(f []string) (Spec, error) {
	s := daemonSpec{MAC: field(f, 0), Type: field(f, 1), Ctl: field(f, 2), Data: strings.Join(f[min(3, len(f)):], ",")}
	if s.Type == "" {
		s.Type = "unix"
	}
	if s.Ctl == "" {
		s.Ctl = DefaultSwitchCtl
	}
	return s, nil
}

type daemonParams struct {
	Switch []byte `json:"switch"` // the switch's data address
}

func openDaemon(h *Host, n int, sp Spec) (*Opened, error) {
	s := sp.(daemonSpec)
	if s.Data != "" {
		h.logf("daemon_setup : Ignoring data socket specification")
	}
	mac := SetupMAC(h.logf, fmt.Sprintf("eth%d", n), s.MAC)
	h.logf("Netdevice %d (%s) : ", n, mac)
	h.logf("daemon backend (uml_switch version 3) - %s:%s", s.Type, s.Ctl)
	if s.Type != "unix" {
		return nil, fmt.Errorf("daemon_open : control connect failed, errno = %d (socket type '%s' is not supported; use unix)", 22, s.Type)
	}
	d, err := DialDaemon(s.Ctl)
	if err != nil {
		return nil, err
	}
	o, err := newOpened(n, "daemon", mac, d.Data, daemonParams{Switch: append([]byte(nil), d.Switch[:]...)})
	if err != nil {
		d.Close()
		return nil, err
	}
	o.own(func() { d.Close() })
	return o, nil
}

func wrapDaemon(e plan.Eth, f *os.File) (Transport, error) {
	var p daemonParams
	if err := params(e, &p); err != nil {
		f.Close()
		return nil, err
	}
	var sw switchproto.Sockaddr
	copy(sw[:], p.Switch)
	return NewDaemon(f, sw)
}
