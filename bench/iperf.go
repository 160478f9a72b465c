package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// iperf and iperf-switch: Debian's iperf3, copied into the busybox image
// with every library ldd lists and the loader, runs iperfTests (TCP with one
// stream and with four, one stream the other way, UDP in 64-byte datagrams
// as fast as the sender goes) 1+3 s each (-O 1 -t 3); the client's --json
// report, one console line per test, gives the receiver's figures.
//
// iperf: the client in the guest, iperf3 -s on the host side of the
// guest's device in a fresh namespace per boot: eth0=tuntap on a tap, vec0
// tap and vec0 raw (a veth end) with gro=1 (iperfLinks); our linux vs
// linux.uml on the same image, and the ceiling: the same tests between two
// namespaces over a veth pair, no guest, reported under every link's names.
//
// iperf-switch: the client and server in two guests on one switch (in the
// host's namespace, its control socket in a temp dir, as switch-tcp): two
// of our linux on our uml_switch, two linux.uml on Debian's uml_switch, our
// pair on our switch while a linux.uml guest that reached the server
// through it keeps pinging it, and the veth ceiling.

const iperf3Path = "/usr/bin/iperf3"

// iperfTest is one iperf3 run: its name in the report, its arguments, and
// how the receiver's bytes per second convert to its unit.
type iperfTest struct {
	name    string
	args    []string
	unit    string
	perUnit float64 // bytes per second per unit
}

// iperfUDPLen is the UDP test's datagram payload.
const iperfUDPLen = 64

// iperfTests run in this order in every setup; a guest reports test i as
// IPERF-RESULT i.
var iperfTests = []iperfTest{
	{"TCP", nil, "MB/s", 1e6},
	{"TCP -P 4", []string{"-P", "4"}, "MB/s", 1e6},
	{"TCP -R", []string{"-R"}, "MB/s", 1e6},
	{fmt.Sprintf("UDP %dB", iperfUDPLen), []string{"-u", "-l", strconv.Itoa(iperfUDPLen), "-b", "0"}, "kpps", iperfUDPLen * 1e3},
}

// iperfArgs are the client arguments of every test.
var iperfArgs = []string{"-t", "3", "-O", "1", "-i", "0", "--json"}

// iperfTimeout bounds a guest's boot and tests.
const iperfTimeout = 3 * time.Minute

// iperfLinks are the host sides iperf's guests reach the server through.
var iperfLinks = []guestLink{tuntapLink, vecTapLink, vecRawLink}

// iperfSwitchName prefixes the iperf-switch metrics.
const iperfSwitchName = "guest-guest"

// iperfReport is the part of an iperf3 --json report read here.
type iperfReport struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			Seconds float64 `json:"seconds"`
			Bytes   float64 `json:"bytes"`
		} `json:"sum_received"`
	} `json:"end"`
}

// value reads the test's figure from the client's report: what the
// receiver got, after the omitted second, in t.unit. UDP packets are counted
// from the bytes: with -O, iperf 3.12's UDP packet and loss counts disagree
// with its byte count.
func (t iperfTest) value(report []byte) (float64, error) {
	var r iperfReport
	if err := json.Unmarshal(report, &r); err != nil {
		return 0, fmt.Errorf("iperf3 report: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	s := r.End.SumReceived
	if s.Seconds <= 0 {
		return 0, errors.New("iperf3 report without end.sum_received")
	}
	return s.Bytes / s.Seconds / t.perUnit, nil
}

// metric names the figure v of t over the link or setup named prefix.
func (t iperfTest) metric(prefix string, v float64) Metric {
	return Metric{prefix + " " + t.name, v, t.unit}
}

var iperfResultRE = regexp.MustCompile(`IPERF-RESULT (\d+) (.*)`)

// iperfMetrics reads every test's IPERF-RESULT line from a guest's console
// output.
func iperfMetrics(prefix, out string) ([]Metric, error) {
	reports := map[int]string{}
	for _, m := range iperfResultRE.FindAllStringSubmatch(out, -1) {
		i, _ := strconv.Atoi(m[1])
		reports[i] = strings.TrimRight(m[2], "\r")
	}
	var ms []Metric
	for i, t := range iperfTests {
		r, ok := reports[i]
		if !ok {
			return nil, fmt.Errorf("%s %s: no IPERF-RESULT %d line in:\n%s", prefix, t.name, i, out)
		}
		v, err := t.value([]byte(r))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w; console:\n%s", prefix, t.name, err, out)
		}
		ms = append(ms, t.metric(prefix, v))
	}
	return ms, nil
}

// iperfClientHead starts a guest's iperf client script (self: its address
// on eth0 or vec0, whichever it has; server; iperfArgs). run N ARGS runs
// test N, retrying while the server is not up yet or still busy with the
// previous test (a report with "error", which iperf 3.12 may end with
// status 0), and prints its report on one line.
const iperfClientHead = `mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
dev=eth0; [ -e /sys/class/net/vec0 ] && dev=vec0
ifconfig $dev %[1]s netmask 255.255.255.0 up
i=0
until ping -c 1 -W 1 %[2]s >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done
run() {
  n=$1; shift; t=0
  until /usr/bin/iperf3 -c %[2]s %[3]s "$@" >/tmp/r.json && ! grep -q '"error"' /tmp/r.json; do t=$((t+1)); [ $t -ge 30 ] && break; sleep 1; done
  echo "IPERF-RESULT $n $(tr -d '\n\t' </tmp/r.json)"
}
`

// iperfClientScript is the /init script of a guest at self that runs
// iperfTests against server, then prints IPERF-DONE and powers off.
func iperfClientScript(self, server string) string {
	var b strings.Builder
	fmt.Fprintf(&b, iperfClientHead, self, server, strings.Join(iperfArgs, " "))
	for i, t := range iperfTests {
		fmt.Fprintf(&b, "run %d %s\n", i, strings.Join(t.args, " "))
	}
	b.WriteString("echo IPERF-DONE\npoweroff -f")
	return b.String()
}

// iperfServerScript is the /init script of iperf-switch's server guest.
const iperfServerScript = `mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.1 netmask 255.255.255.0 up
echo SRV-READY
while :; do /usr/bin/iperf3 -s >/dev/null 2>&1; sleep 1; done` // an iperf3 that fails (seen on linux.uml) is restarted

// iperfBystanderScript is the /init script of the linux.uml guest that
// pings the server while our pair is measured; BYSTANDER-UP says the
// server answered it.
const iperfBystanderScript = `ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.3 netmask 255.255.255.0 up
until ping -c 1 -W 1 10.77.0.1 >/dev/null 2>&1; do :; done
echo BYSTANDER-UP
exec ping -q 10.77.0.1 >/dev/null`

// iperfSetup builds the image of the guest iperf boots (netimg).
func iperfSetup(e *Env) error {
	return iperfImages(e, map[string]string{"netimg": iperfClientScript("10.77.9.2", "10.77.9.1")})
}

// iperfSwitchSetup builds the images of iperf-switch's guests.
func iperfSwitchSetup(e *Env) error {
	return iperfImages(e, map[string]string{
		"iperf-server":    iperfServerScript,
		"iperf-client":    iperfClientScript("10.77.0.2", "10.77.0.1"),
		"iperf-bystander": iperfBystanderScript,
	})
}

// iperfImages checks what the iperf benchmarks need and builds a busybox
// image with iperf3 for each script, at e.Vars[key].
func iperfImages(e *Env, scripts map[string]string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces, taps, veths)", errSkip)
	}
	if _, err := os.Stat(realUML); err != nil {
		return fmt.Errorf("linux.uml not installed (apt-get install user-mode-linux)")
	}
	files, err := iperfFiles()
	if err != nil {
		return err
	}
	for key, script := range scripts {
		img, err := busyboxImage(filepath.Join(e.Dir, key), script, files)
		if err != nil {
			return err
		}
		e.Vars[key] = img
	}
	return nil
}

// iperfFiles returns iperf3 and the libraries and loader ldd lists for it,
// as busyboxImage takes them: each at its host path in the image.
func iperfFiles() (map[string]string, error) {
	if _, err := os.Stat(iperf3Path); err != nil {
		return nil, fmt.Errorf("iperf3 not installed (apt-get install iperf3)")
	}
	out, err := exec.Command("ldd", iperf3Path).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", iperf3Path, err)
	}
	files := map[string]string{strings.TrimPrefix(iperf3Path, "/"): iperf3Path}
	for _, p := range lddPaths(string(out)) {
		files[strings.TrimPrefix(p, "/")] = p
	}
	return files, nil
}

// lddPaths returns the files in ldd's output: each library's path and the
// loader's (the vDSO has none).
func lddPaths(out string) []string {
	var paths []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths = append(paths, f[0])
		}
	}
	return paths
}

// iperfGuest runs iperfTests from a guest of kernel kind ("ours", "real")
// to the host over each of iperfLinks, each in a fresh namespace with
// iperf3 -s on the host side.
func iperfGuest(e *Env, kind string) ([]Metric, error) {
	var all []Metric
	for _, l := range iperfLinks {
		ms, err := withNetNS("umlkit-bench-iperf", func(ns string) ([]Metric, error) {
			if err := l.add(ns); err != nil {
				return nil, err
			}
			stopServer, err := startIn(ns, iperf3Path, "-s")
			if err != nil {
				return nil, err
			}
			defer stopServer()
			log, stop, err := bootWith(e, ns, kind, l.arg)
			if err != nil {
				return nil, err
			}
			defer stop()
			if err := log.waitFor("IPERF-DONE", iperfTimeout, kind, "console"); err != nil {
				return nil, err
			}
			return iperfMetrics(l.name, log.String())
		})
		if err != nil {
			return nil, err
		}
		all = append(all, ms...)
	}
	return all, nil
}

// iperfCeiling runs iperfTests between two namespaces over a veth pair, no
// guest, and reports each figure under every name of names.
func iperfCeiling(names ...string) func(*Env) ([]Metric, error) {
	return func(e *Env) ([]Metric, error) {
		return withVethPair(func(ns, peer string) ([]Metric, error) {
			stopServer, err := startIn(ns, iperf3Path, "-s")
			if err != nil {
				return nil, err
			}
			defer stopServer()
			var ms []Metric
			for _, t := range iperfTests {
				v, err := iperfFrom(peer, "10.77.9.1", t)
				if err != nil {
					return nil, err
				}
				for _, n := range names {
					ms = append(ms, t.metric(n, v))
				}
			}
			return ms, nil
		})
	}
}

// iperfFrom runs test t from ns against server, retrying (for 5 s) while
// the server is not up yet.
func iperfFrom(ns, server string, t iperfTest) (float64, error) {
	argv := append(append([]string{"netns", "exec", ns, iperf3Path, "-c", server}, iperfArgs...), t.args...)
	var v float64
	var err error
	for try := 0; try < 25; try++ {
		var out []byte
		out, err = exec.Command("ip", argv...).Output()
		if v, err = t.value(out); err == nil {
			return v, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("veth ceiling %s: %w", t.name, err)
}

// iperfPair is one iperf-switch setup: the switch's kind (as
// startSwitchProc takes it), the kernel of the two guests, and whether a
// linux.uml guest pinging the server is attached too.
type iperfPair struct {
	sw, guests string
	bystander  bool
}

// run boots the server, the bystander (and waits until the server
// answered it) and the client on a new switch, and reads the client's
// reports.
func (p iperfPair) run(e *Env) ([]Metric, error) {
	s, err := startSwitchProc(e, p.sw)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	eth := func(n int) string { return fmt.Sprintf("eth0=daemon,fe:fd:0a:4d:00:%02x,unix,%s", n, s.ctl) }
	srv, stopSrv, err := bootImage(e, "", p.guests, e.Vars["iperf-server"], eth(1))
	if err != nil {
		return nil, err
	}
	defer stopSrv()
	if p.bystander {
		log, stop, err := bootImage(e, "", "real", e.Vars["iperf-bystander"], eth(3))
		if err != nil {
			return nil, err
		}
		defer stop()
		if err := log.waitFor("BYSTANDER-UP", time.Minute, "real", "bystander console"); err != nil {
			return nil, fmt.Errorf("%w\nserver console:\n%s", err, srv.String())
		}
	}
	cli, stopCli, err := bootImage(e, "", p.guests, e.Vars["iperf-client"], eth(2))
	if err != nil {
		return nil, err
	}
	defer stopCli()
	if err := cli.waitFor("IPERF-DONE", iperfTimeout, p.guests, "client console"); err != nil {
		return nil, fmt.Errorf("%w\nserver console:\n%s", err, srv.String())
	}
	return iperfMetrics(iperfSwitchName, cli.String())
}

// linkNames returns the links' names.
func linkNames(ls []guestLink) []string {
	var ns []string
	for _, l := range ls {
		ns = append(ns, l.name)
	}
	return ns
}
