package main

import (
	"fmt"
	"os/exec"
	"syscall"
)

// vec-net: TCP throughput from a guest's vec0 to a sink on the host, our
// linux vs Debian's linux.uml on the same image and the same vector
// transport, and the ceiling: the same transfer between two network
// namespaces over a veth pair, no guest. Each measurement runs in fresh
// namespaces (needs root): a veth pair vbench0 (10.77.9.1, the sink) /
// vbench1 (no address; vec0:transport=raw,ifname=vbench1), or a tap
// benchtap0 (vec0:transport=tap,ifname=benchtap0). Both kernels get gro=1:
// the guest's 64 KiB segments then cross whole.

// vecNetSetup is linuxNetSetup on vec0.
func vecNetSetup(e *Env) error { return netSetup(e, "vec0") }

// ipn runs ip -n ns args.
func ipn(ns string, args ...string) error {
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %v: %v: %s", args, err, out)
	}
	return nil
}

// addBenchVeth brings lo up in ns and adds the veth pair vbench0
// (10.77.9.1/24) / vbench1 (into peerNS, or ns when "").
func addBenchVeth(ns, peerNS string) error {
	if peerNS == "" {
		peerNS = ns
	}
	for _, step := range [][]string{
		{ns, "link", "set", "lo", "up"},
		{ns, "link", "add", "vbench0", "type", "veth", "peer", "name", "vbench1", "netns", peerNS},
		{ns, "addr", "add", "10.77.9.1/24", "dev", "vbench0"},
		{ns, "link", "set", "vbench0", "up"},
		{peerNS, "link", "set", "vbench1", "up"},
	} {
		if err := ipn(step[0], step[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startSink starts tcptool's sink in ns; stop kills it.
func startSink(e *Env, ns string) (stop func(), err error) {
	return startIn(ns, e.Vars["tcptool"], "sink", "5001")
}

// startIn starts the server argv in ns, output discarded; stop kills its
// process group and reaps it.
func startIn(ns string, argv ...string) (stop func(), err error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }, nil
}

// guestLink is a host side that a guest's device reaches 10.77.9.1
// through, added in a fresh namespace, and the kernel argument that
// attaches the guest to it.
type guestLink struct {
	name string // in metric names
	arg  string
	add  func(ns string) error
}

var (
	tuntapLink = guestLink{"eth0 tuntap", "eth0=tuntap,benchtap0", addBenchTap}
	vecTapLink = guestLink{"vec0 tap", "vec0:transport=tap,ifname=benchtap0,gro=1", addBenchTap}
	vecRawLink = guestLink{"vec0 raw", "vec0:transport=raw,ifname=vbench1,gro=1",
		func(ns string) error { return addBenchVeth(ns, "") }}
)

// vecMetric names the TCP figure of a transport; the veth ceiling is
// reported under each name, so every line shows ours/ceiling.
func vecMetric(transport string) string { return "TCP to the host, vec0 " + transport }

// vecBoth measures kernel kind on raw and on tap.
func vecBoth(e *Env, kind string) ([]Metric, error) {
	var ms []Metric
	for _, tr := range []string{"raw", "tap"} {
		m, err := vecTCP(tr)(e, kind)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m...)
	}
	return ms, nil
}

// vecTCP measures kernel kind ("ours", "real") with vec0 on transport
// ("raw" or "tap").
func vecTCP(transport string) func(e *Env, kind string) ([]Metric, error) {
	return func(e *Env, kind string) ([]Metric, error) {
		link := vecRawLink
		if transport == "tap" {
			link = vecTapLink
		}
		return withNetNS("umlkit-bench-vec", func(ns string) ([]Metric, error) {
			if err := link.add(ns); err != nil {
				return nil, err
			}
			stopSink, err := startSink(e, ns)
			if err != nil {
				return nil, err
			}
			defer stopSink()
			log, stop, err := bootWith(e, ns, kind, link.arg)
			if err != nil {
				return nil, err
			}
			defer stop()
			if err := log.waitTransfers(kind, "console"); err != nil {
				return nil, err
			}
			return []Metric{{vecMetric(transport), median(log.rates(tcpMiB)), "MB/s"}}, nil
		})
	}
}

// vethCeiling sends the same three transfers from a second namespace over
// the veth pair: the host's own speed on this path, no guest (the
// ceiling, reported under both transports' names).
func vethCeiling(e *Env) ([]Metric, error) {
	return withVethPair(func(ns, peer string) ([]Metric, error) {
		stopSink, err := startSink(e, ns)
		if err != nil {
			return nil, err
		}
		defer stopSink()
		// 16 times the guests' transfer, so the two process starts
		// timed with it are noise.
		const mib = 16 * tcpMiB
		var rates []float64
		for r := 0; r < 3; r++ {
			ms, err := Timed(exec.Command("ip", "netns", "exec", peer, e.Vars["tcptool"], "send", "10.77.9.1:5001", fmt.Sprint(mib)))
			if err != nil {
				return nil, err
			}
			rates = append(rates, float64(mib)*1.048576/(ms/1000))
		}
		c := median(rates)
		return []Metric{{vecMetric("raw"), c, "MB/s"}, {vecMetric("tap"), c, "MB/s"}}, nil
	})
}

// withVethPair runs f with two fresh namespaces joined by the veth pair of
// addBenchVeth: vbench0 (10.77.9.1) in ns, vbench1 (10.77.9.2) in peer.
func withVethPair(f func(ns, peer string) ([]Metric, error)) ([]Metric, error) {
	return withNetNS("umlkit-bench-vec", func(ns string) ([]Metric, error) {
		return withNetNS("umlkit-bench-vecpeer", func(peer string) ([]Metric, error) {
			if err := addBenchVeth(ns, peer); err != nil {
				return nil, err
			}
			if err := ipn(peer, "addr", "add", "10.77.9.2/24", "dev", "vbench1"); err != nil {
				return nil, err
			}
			return f(ns, peer)
		})
	})
}
