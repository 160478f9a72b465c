package main

import "time"

// The benchmarks are two tables: benchmarks, whose rows name the programs
// each variant runs and the functions that measure them, and guestBenches,
// whose rows are a script booted on each kernel. Adding a benchmark is
// adding a row; what a row's functions do is documented beside them, in the
// benchmark's own file (linux.go for boot, syscall and mem).

// benchmarks are the benchmarks of our binaries and daemons against the
// real ones.
var benchmarks = []*Benchmark{
	{
		Name:     "startup",
		Doc:      "uml_mkcow with no arguments (usage + exit): start-up cost, ours vs Debian's",
		Variants: oursVsReal(tool{"uml_mkcow", "/usr/bin/uml_mkcow", noArgsStarts}),
	},
	{
		Name:     "porthelper",
		Doc:      "port-helper -uml-socket: process start to terminal fd received, ours vs Debian's",
		Variants: oursVsReal(tool{"port-helper", "/usr/lib/uml/port-helper", handOvers}),
	},
	{
		Name: "net",
		Doc:  "tunctl create+delete and uml_net 4 tuntap up (reply with fd) in a fresh netns, ours vs Debian's",
		Variants: oursVsReal(
			tool{"tunctl", "/usr/bin/tunctl", tunctlCycles},
			tool{"uml_net", "/usr/bin/uml_net", tuntapUps},
		),
	},
	{
		Name:  "moo",
		Doc:   "uml_moo merge of a 1 GiB backing, 512 MiB dirty: ours vs Debian's vs cp --sparse=always",
		Setup: mooSetup,
		Variants: []Variant{
			{Name: "ours", Run: withOurs("uml_moo", mergeInto("ours.img"))},
			{Name: "real", Run: withPath("/usr/bin/uml_moo", mergeInto("real.img"))},
			{Name: "cp", Run: copyBacking},
		},
		Check: mooCheck,
	},
	{
		Name:  "mconsole",
		Doc:   "100 one-shot `uml_mconsole mc version` calls against a real linux.uml guest, ours vs Debian's",
		Setup: mconsoleGuest.start,
		Variants: []Variant{
			{Name: "ours", Run: withOurs("uml_mconsole", oneShots("mc", "version"))},
			{Name: "real", Run: withPath("/usr/bin/uml_mconsole", oneShots("mc", "version"))},
			{Name: "/bin/true", Run: withPath("/bin/true", oneShots())},
		},
		Check: mconsoleGuest.check,
	},
	{
		Name:     "switch",
		Doc:      "uml_switch forwarding: 4 ports via the real protocol, 64/1514-byte unicast frames; ours vs uml_switch vs vde_switch",
		Variants: byKind(forwarding, switches...),
	},
	{
		Name:     "switch-tcp",
		Doc:      "TCP between two real UML guests over the switch (32 MiB busybox nc transfers); ours vs uml_switch vs vde_switch",
		Setup:    switchTCPSetup,
		Variants: byKind(switchTCP, switches...),
	},
	{
		Name:     "linux-net",
		Doc:      "TCP from the guest over eth0=tuntap,TAP to a sink on the host tap (32 MiB x3), our linux vs linux.uml",
		Setup:    linuxNetSetup,
		Variants: byKind(tapTCP, impl{"ours", "ours"}, impl{"linux.uml", "real"}),
	},
	{
		Name:  "vec-net",
		Doc:   "TCP from the guest over vec0:transport=raw (a veth) and =tap, gro=1, to a host sink (32 MiB x3), our linux vs linux.uml, and the veth ceiling",
		Setup: vecNetSetup,
		Variants: append(byKind(vecBoth, impl{"ours", "ours"}, impl{"linux.uml", "real"}),
			Variant{Name: "veth ceiling", Run: vethCeiling}),
	},
	{
		Name:  "iperf",
		Doc:   "iperf3 (TCP, TCP -P 4, TCP -R, UDP 64-byte pps) from the guest to the host over eth0=tuntap, vec0 tap and vec0 raw (gro=1), our linux (kernel data path, as root) vs ours relayed by K (UMLKIT_NET_RELAY=1) vs linux.uml, and the veth ceiling",
		Setup: iperfSetup,
		Variants: append(byKind(iperfGuest, impl{"ours", "ours"}, impl{"ours relay", oursRelay}, impl{"linux.uml", "real"}),
			Variant{Name: "veth ceiling", Run: iperfCeiling(linkNames(iperfLinks)...)}),
	},
	{
		Name:  "systemd",
		Doc:   "stock Debian 12 under systemd: launch to login prompt and systemctl poweroff to exit, ours (root) vs linux.uml",
		Setup: stockSetup,
		Variants: []Variant{
			{Name: "ours", Run: func(e *Env) ([]Metric, error) { return bootStock(e, e.Ours("linux")) }},
			{Name: "real", Run: func(e *Env) ([]Metric, error) { return bootStock(e, realUML) }},
		},
	},
	{
		Name:  "iperf-switch",
		Doc:   "iperf3 (as iperf) between two guests on one switch: ours on our uml_switch, linux.uml on Debian's, ours with a linux.uml guest on our switch too, and the veth ceiling",
		Setup: iperfSwitchSetup,
		Variants: []Variant{
			{Name: "ours", Run: iperfPair{sw: "ours", guests: "ours"}.run},
			{Name: "real", Run: iperfPair{sw: "real", guests: "real"}.run},
			{Name: "ours+linux.uml", Run: iperfPair{sw: "ours", guests: "ours", bystander: true}.run},
			{Name: "veth ceiling", Run: iperfCeiling(iperfSwitchName)},
		},
	},
	{
		Name:  "vxlan",
		Doc:   "iperf3 (as iperf) from our guest across VXLAN to Linux's vxlan on a bridge in another namespace: the guest on our uml_switch -vxlan vs on a tap in Linux's vxlan bridge",
		Setup: vxlanSetup,
		Variants: []Variant{
			{Name: "ours", Run: vxlanBench(true)},
			{Name: "kernel", Run: vxlanBench(false)},
		},
	},
}

// guestBenches are the benchmarks of linux against Debian's linux.uml on the
// same busybox image (shared/docs/baselines.md #1, #2, #6), some with the
// same script run on the host for reference.
var guestBenches = []guestBench{
	{
		name:     "boot",
		doc:      "launch to init marker and to exit, ours vs linux.uml (same busybox image)",
		images:   "boot",
		script:   fixed("echo BENCH-INIT-READY\npoweroff -f\n"),
		variants: kernels,
		marker:   "BENCH-INIT-READY",
		timeout:  60 * time.Second,
		read:     bootTimes,
	},
	{
		name:    "syscall",
		doc:     "getppid, open+close, fork+exec+wait in the guest (ours, linux.uml) and on the host",
		images:  "sys",
		prepare: writeHostFile,
		script:  syscallScript,
		variants: []guestVariant{
			{name: "ours", kernel: "ours", image: "ours"},
			{name: "real", kernel: "real", image: "real"},
			{name: "host", host: syscallsOnHost},
		},
		marker:  "BENCH ",
		timeout: 120 * time.Second,
		read: consoleLine(`BENCH getppid_ns=([0-9.]+) openclose_ns=([0-9.]+) forkexec_us=([0-9.]+)`,
			field{"getppid", "ns", asIs},
			field{"open+close", "ns", asIs},
			field{"fork+exec+wait", "us", asIs}),
	},
	{
		name:     "mem",
		doc:      "RSS of an idle guest's host processes (ours: P, K, fuse2fs; UML: once per address space)",
		images:   "mem",
		script:   fixed("echo GUEST-IDLE\nexec sleep 1000\n"),
		variants: kernels,
		measure:  idleRSS,
	},
	{
		name:     "console",
		doc:      "guest output throughput through a console line (dd to /dev/tty1, con1=null): ours vs linux.uml",
		images:   "console",
		script:   fixed(consoleScript),
		variants: kernels,
		args:     []string{"con1=null"},
		marker:   "CON write_ns",
		timeout:  3 * time.Minute,
		read: consoleLine(`CON write_ns=(\d+)`,
			field{"guest write 64 MiB to tty1 (con1=null)", "MB/s", throughput(64)}),
	},
	{
		name:    "hostfs",
		doc:     "guest find/read/write on a hostfs mount of a host directory: ours (bind) vs linux.uml's hostfs",
		images:  "hostfs",
		prepare: makeHostfsDir,
		script:  hostfsScriptFor,
		variants: []guestVariant{
			{name: "ours", kernel: "ours", image: "ours", disk: freshCopy},
			{name: "real", kernel: "real", image: "real", disk: freshCopy},
		},
		marker:  "HOSTFS find_ns",
		timeout: 5 * time.Minute,
		read: consoleLine(`HOSTFS find_ns=(\d+) read_ns=(\d+) write_ns=(\d+)`,
			field{"find over hostfs (~20k entries)", "ms", nsToMs},
			field{"read 128 MiB from hostfs", "MB/s", throughput(128)},
			field{"write 64 MiB to hostfs (conv=fsync)", "MB/s", throughput(64)}),
	},
	{
		name:   "io",
		doc:    "guest 256 MiB write/read and find / over ~20k entries: ours native, ours fuse2fs, ours on a COW (fuse2fs), linux.uml, host",
		images: "io",
		script: fixed(ioScript),
		adjust: addIOTree,
		finish: makeHostIOTree,
		variants: []guestVariant{
			{name: "ours", kernel: "ours", image: "ours", disk: freshCopy},
			{name: "ours-fuse2fs", kernel: "ours", image: "ours-fuse", disk: freshCopy, env: []string{"UMLKIT_ROOT_FUSE=1"}},
			{name: "ours-cow", kernel: "ours", image: "ours-cow", disk: cowOverCopy},
			{name: "real", kernel: "real", image: "real", disk: freshCopy, args: []string{"rw"}},
			{name: "host", host: ioOnHost},
		},
		marker:  "IO write_ns",
		timeout: 5 * time.Minute,
		read: consoleLine(`IO write_ns=(\d+) read_ns=(\d+) find_ns=(\d+)`,
			field{"write 256 MiB (conv=fsync)", "MB/s", throughput(256)},
			field{"read 256 MiB", "MB/s", throughput(256)},
			field{"find / (~20k entries)", "ms", nsToMs}),
	},
}

// kernels are the two kernels booting the image as built.
var kernels = []guestVariant{
	{name: "ours", kernel: "ours", image: "ours"},
	{name: "real", kernel: "real", image: "real"},
}

// switches are the switches the switch benchmarks compare.
var switches = []impl{{"ours", "ours"}, {"uml_switch", "real"}, {"vde_switch", "vde"}}

// allBenchmarks returns the rows of both tables as Benchmarks.
func allBenchmarks() []*Benchmark {
	all := append([]*Benchmark(nil), benchmarks...)
	for _, g := range guestBenches {
		all = append(all, g.benchmark())
	}
	return all
}

// programMeasure is one measurement of the program at path.
type programMeasure func(e *Env, path string) ([]Metric, error)

// tool is a program both sides have: our binary's name in -bin, the real
// tool's path, and how one measurement runs either.
type tool struct {
	ours, real string
	measure    programMeasure
}

// oursVsReal returns the variants "ours" and "real": each measures the tools
// in order, with its side's programs, and reports all their metrics.
func oursVsReal(tools ...tool) []Variant {
	side := func(path func(e *Env, t tool) string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			var all []Metric
			for _, t := range tools {
				ms, err := t.measure(e, path(e, t))
				if err != nil {
					return nil, err
				}
				all = append(all, ms...)
			}
			return all, nil
		}
	}
	return []Variant{
		{Name: "ours", Run: side(func(e *Env, t tool) string { return e.Ours(t.ours) })},
		{Name: "real", Run: side(func(_ *Env, t tool) string { return t.real })},
	}
}

// withOurs measures our binary name.
func withOurs(name string, m programMeasure) func(*Env) ([]Metric, error) {
	return func(e *Env) ([]Metric, error) { return m(e, e.Ours(name)) }
}

// withPath measures the program at path.
func withPath(path string, m programMeasure) func(*Env) ([]Metric, error) {
	return func(e *Env) ([]Metric, error) { return m(e, path) }
}

// impl names a variant and the implementation it runs, spelled as the
// measurement takes it ("ours", "real", "vde": see startSwitchProc and
// bootArgs).
type impl struct{ variant, kind string }

// byKind returns one variant per impl, each running measure on its kind.
func byKind(measure func(e *Env, kind string) ([]Metric, error), impls ...impl) []Variant {
	var vs []Variant
	for _, im := range impls {
		kind := im.kind
		vs = append(vs, Variant{Name: im.variant, Run: func(e *Env) ([]Metric, error) { return measure(e, kind) }})
	}
	return vs
}
