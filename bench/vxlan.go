package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// vxlan: iperfTests from one of our guests across a VXLAN segment to a
// server, between two namespaces (hosts) joined by a veth of MTU 1550 (so
// nothing is fragmented). Host B is always Linux: vxlan device vx0 (VNI
// 42) on bridge br0, which holds 10.77.10.2 and runs iperf3 -s. On host A
// the guest (10.77.10.1, the iperf image's client) reaches it through
// either our uml_switch -vxlan (eth0=daemon: ours) or Linux's own vxlan
// device on a bridge (eth0=tuntap on a tap in the bridge: kernel). The
// UDP 64-byte figure is the frame rate through the VTEP.

// vxlanSetup builds the client guest's image.
func vxlanSetup(e *Env) error {
	return iperfImages(e, map[string]string{"vxlan-client": iperfClientScript("10.77.10.1", "10.77.10.2")})
}

// vxlanBench measures one variant: ours (our switch on host A) or Linux's
// vxlan on both hosts.
func vxlanBench(ours bool) func(e *Env) ([]Metric, error) {
	return func(e *Env) ([]Metric, error) {
		return withNetNS("umlkit-bench-vxa", func(a string) ([]Metric, error) {
			return withNetNS("umlkit-bench-vxb", func(b string) ([]Metric, error) {
				if err := vxlanHosts(a, b); err != nil {
					return nil, err
				}
				if err := kernelVTEP(b, "10.77.11.1", "10.77.11.2", "10.77.10.2/24"); err != nil {
					return nil, err
				}
				eth := "eth0=tuntap,benchtap"
				if ours {
					ctl, stop, err := vxlanSwitch(e, a)
					if err != nil {
						return nil, err
					}
					defer stop()
					eth = "eth0=daemon,,unix," + ctl
				} else {
					if err := kernelVTEP(a, "10.77.11.2", "10.77.11.1", ""); err != nil {
						return nil, err
					}
					for _, step := range [][]string{
						{"tuntap", "add", "dev", "benchtap", "mode", "tap"},
						{"link", "set", "benchtap", "master", "br0", "up"},
					} {
						if err := ipn(a, step...); err != nil {
							return nil, err
						}
					}
				}
				stopServer, err := startIn(b, iperf3Path, "-s")
				if err != nil {
					return nil, err
				}
				defer stopServer()
				log, stop, err := bootImage(e, a, "ours", e.Vars["vxlan-client"], eth)
				if err != nil {
					return nil, err
				}
				defer stop()
				if err := log.waitFor("IPERF-DONE", iperfTimeout, "ours", "console"); err != nil {
					return nil, err
				}
				return iperfMetrics("vxlan", log.String())
			})
		})
	}
}

// vxlanHosts joins a (10.77.11.1) and b (10.77.11.2) by a veth of MTU 1550.
func vxlanHosts(a, b string) error {
	for _, step := range [][]string{
		{a, "link", "set", "lo", "up"},
		{b, "link", "set", "lo", "up"},
		{a, "link", "add", "vxa", "mtu", "1550", "type", "veth", "peer", "name", "vxb", "mtu", "1550", "netns", b},
		{a, "addr", "add", "10.77.11.1/24", "dev", "vxa"},
		{b, "addr", "add", "10.77.11.2/24", "dev", "vxb"},
		{a, "link", "set", "vxa", "up"},
		{b, "link", "set", "vxb", "up"},
	} {
		if err := ipn(step[0], step[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// kernelVTEP makes ns a Linux VTEP to remote from local, with addr (if
// any) on its bridge.
func kernelVTEP(ns, remote, local, addr string) error {
	for _, step := range [][]string{
		{"link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "remote", remote, "local", local},
		{"link", "add", "br0", "type", "bridge"},
		{"link", "set", "vx0", "master", "br0", "up"},
		{"addr", "add", addr, "dev", "br0"},
		{"link", "set", "br0", "up"},
	} {
		if step[0] == "addr" && addr == "" {
			continue
		}
		if err := ipn(ns, step...); err != nil {
			return err
		}
	}
	return nil
}

// vxlanSwitch starts our uml_switch in ns with a VXLAN uplink to host B
// and returns its control socket.
func vxlanSwitch(e *Env, ns string) (ctl string, stop func(), err error) {
	dir, err := os.MkdirTemp(e.Dir, "vxlan-")
	if err != nil {
		return "", nil, err
	}
	ctl = filepath.Join(dir, "sw.ctl")
	cmd := exec.Command("ip", "netns", "exec", ns, e.Ours("uml_switch"), "-unix", ctl,
		"-vxlan", "42", "-vxlan-peer", "10.77.11.2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := os.Stat(ctl); err == nil && st.Mode()&os.ModeSocket != 0 {
			return ctl, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("uml_switch -vxlan: no control socket after 5 s")
		}
	}
}
