package e2e

// The kernel data path of eth devices (docs/linux.md, "Kernel data
// path"): run as root, our linux joins eth0=tuntap, vecN tap and vecN raw
// devices to their host interface in the kernel (a veth pair and tcx
// redirects) instead of relaying their frames through K.

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// kpathTCPBytes is what each direction of kpathTCP's transfers carries.
const kpathTCPBytes = 4 << 20

// kpathInit is the guest's script of kpathTCP on device dev: it reports
// the device's iflink and ifindex (a veth's differ, a TAP's are equal),
// sends 4 MiB of random data to the host's sink on port 5001 with its MD5,
// receives the host's on port 5002 and reports its size and MD5, and
// powers off after a line on its console.
func kpathInit(dev string) string {
	return `mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
ifconfig ` + dev + ` 10.77.9.2 netmask 255.255.255.0 up
echo "LINK $(cat /sys/class/net/` + dev + `/iflink) $(cat /sys/class/net/` + dev + `/ifindex)"
dd if=/dev/urandom of=/tmp/out bs=64k count=` + itoa(kpathTCPBytes/65536) + ` 2>/dev/null
echo "GUEST-SENT-MD5 $(md5sum </tmp/out | cut -d' ' -f1)"
sleep 90 | nc -l -p 5002 | { cat >/tmp/in; echo "GUEST-RECEIVED $(wc -c </tmp/in) $(md5sum </tmp/in | cut -d' ' -f1)"; } &
i=0
until ping -c 1 -W 1 10.77.9.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 30 ] && break; done
nc 10.77.9.1 5001 </tmp/out && echo TCP-SENT
read line
poweroff -f
`
}

var (
	linkRE      = regexp.MustCompile(`LINK (\d+) (\d+)`)
	guestMD5RE  = regexp.MustCompile(`GUEST-SENT-MD5 ([0-9a-f]{32})`)
	guestRecvRE = regexp.MustCompile(`GUEST-RECEIVED (\d+) ([0-9a-f]{32})`)
)

// kpathTCP boots our linux in ns with the device spec (dev in the guest)
// and extra environment, moves kpathTCPBytes of random data each way over
// TCP between the guest (10.77.9.2) and the namespace (10.77.9.1), checks
// both by MD5 and returns the guest, whether its device was a veth end
// (the kernel data path) rather than a TAP, and how many host ends of
// pairs were in ns while it ran. Each of those must have carried the
// transfers; after the guest has ended, none may be left.
func kpathTCP(t *testing.T, ns, dev, spec string, env []string) (*harness.Guest, bool, int) {
	t.Helper()
	dir := t.TempDir()
	received := filepath.Join(dir, "received")
	sink := testutil.InNetNS(ns, "/bin/sh", "-c", "exec /bin/busybox nc -l -p 5001 >"+received)
	stdin, keep, err := os.Pipe() // busybox nc stops at the end of its input: keep it open
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	sink.Stdin = stdin
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	sinkDone := make(chan struct{})
	go func() { sink.Wait(); close(sinkDone) }()
	defer func() { sink.Process.Kill(); <-sinkDone }()

	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: kpathInit(dev)})
	argv := []string{"ip", "netns", "exec", ns, harness.Bin(t, "linux"), "ubd0=" + img, "init=/init", "uml_dir=" + t.TempDir(), spec}
	g := harness.Start(t, env, argv...)
	if err := g.WaitOutput("TCP-SENT", 90*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	select { // the sink ends with the connection, once the data is in
	case <-sinkDone:
	case <-time.After(10 * time.Second):
	}
	m := guestMD5RE.FindStringSubmatch(g.Output())
	got, _ := os.ReadFile(received)
	if m == nil || len(got) != kpathTCPBytes || md5hex(got) != m[1] {
		t.Fatalf("guest to host: received %d bytes, MD5 %s; the guest sent %d bytes, MD5 %v\n%s",
			len(got), md5hex(got), kpathTCPBytes, m, g.Output())
	}
	// And the other way.
	data := make([]byte, kpathTCPBytes)
	rand.Read(data)
	file := filepath.Join(dir, "send")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	send := testutil.InNetNS(ns, "/bin/sh", "-c", "timeout 30 /bin/busybox nc 10.77.9.2 5002 <"+file)
	if b, err := send.CombinedOutput(); err != nil {
		t.Fatalf("host to guest: %v: %s\n%s", err, b, g.Output())
	}
	want := fmt.Sprintf("GUEST-RECEIVED %d %s", kpathTCPBytes, md5hex(data))
	if err := g.WaitOutput(want, 30*time.Second); err != nil {
		r := guestRecvRE.FindStringSubmatch(g.Output())
		t.Fatalf("host to guest: want %q, the guest says %v\n%s", want, r, g.Output())
	}
	// The pair's host end carried it all (while the guest still runs).
	ends := hostEnds(t, ns)
	for _, h := range ends {
		if h.Stats.RX.Bytes < kpathTCPBytes || h.Stats.TX.Bytes < kpathTCPBytes {
			t.Errorf("host end %s carried rx %d, tx %d bytes; want at least %d each way", h.Name, h.Stats.RX.Bytes, h.Stats.TX.Bytes, kpathTCPBytes)
		}
	}
	fmt.Fprintln(g.Stdin())
	if _, err := g.Wait(30 * time.Second); err != nil {
		t.Fatalf("the guest did not power off: %v\n%s", err, g.Output())
	}
	if left := hostEnds(t, ns); len(left) > 0 {
		t.Errorf("after the machine: host ends left in the namespace: %v", left)
	}
	l := linkRE.FindStringSubmatch(g.Output())
	if l == nil {
		t.Fatalf("no LINK line:\n%s", g.Output())
	}
	return g, l[1] != l[2], len(ends)
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// hostEnd is a host end of a kernel data path's veth pair, as `ip -j -s
// link` shows it.
type hostEnd struct {
	Name  string   `json:"ifname"`
	Index int      `json:"ifindex"`
	Flags []string `json:"flags"`
	MTU   int      `json:"mtu"`
	Alias string   `json:"ifalias"`
	Stats struct {
		RX struct{ Bytes, Packets uint64 } `json:"rx"`
		TX struct{ Bytes, Packets uint64 } `json:"tx"`
	} `json:"stats64"`
}

func (h hostEnd) String() string { return h.Name }

// hostEnds lists the host ends of kernel data paths (umlk*) in ns.
func hostEnds(t *testing.T, ns string) []hostEnd {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip -n %s link show: %v", ns, err)
	}
	var links []hostEnd
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("ip -j link: %v\n%s", err, out)
	}
	var ends []hostEnd
	for _, l := range links {
		if strings.HasPrefix(l.Name, "umlk") {
			ends = append(ends, l)
		}
	}
	return ends
}

// TestIntegrationLinuxNetKernelPath: run as root, our linux joins
// eth0=tuntap, vec0 tap and vec0 raw to the host's tap or veth end in the
// kernel: the boot log says so, the guest's device is a veth end, 4 MiB of
// random data crosses each way over TCP intact (MD5), all of it through the
// pair's host end, and nothing of the pair is left after the machine.
// With UMLKIT_NET_RELAY=1 the same devices are relayed by K (a TAP in the
// guest, the boot log says why) and pass the same transfers.
func TestIntegrationLinuxNetKernelPath(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTUN(t)
	requireTCX(t)
	for _, c := range []struct {
		name, dev, spec, line string
		tap                   bool
	}{
		{"tuntap", "eth0", "eth0=tuntap,vh1", "eth0: kernel data path to host tap vh1 (veth umlk", true},
		{"vec-tap", "vec0", "vec0:transport=tap,ifname=vh1,gro=1", "vec0: kernel data path to host tap vh1 (veth umlk", true},
		{"vec-raw", "vec0", "vec0:transport=raw,ifname=vh1", "vec0: kernel data path to host interface vh1 (veth umlk", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, veth, ends := kpathTCP(t, hostLink(t, c.tap), c.dev, c.spec, nil)
			if !strings.Contains(g.Output(), c.line) {
				t.Errorf("boot log lacks %q:\n%s", c.line, g.Output())
			}
			if !veth || ends != 1 {
				t.Errorf("the guest's %s is a veth end: %v, host ends: %d; want a veth end and 1", c.dev, veth, ends)
			}
		})
		t.Run(c.name+"-relay", func(t *testing.T) {
			g, veth, ends := kpathTCP(t, hostLink(t, c.tap), c.dev, c.spec, []string{"UMLKIT_NET_RELAY=1"})
			if want := c.dev + ": UMLKIT_NET_RELAY is set: frames are relayed by linux"; !strings.Contains(g.Output(), want) {
				t.Errorf("boot log lacks %q:\n%s", want, g.Output())
			}
			if strings.Contains(g.Output(), "kernel data path to") || veth || ends != 0 {
				t.Errorf("UMLKIT_NET_RELAY=1 still gave %s the kernel data path:\n%s", c.dev, g.Output())
			}
		})
	}
}

// requireTCX skips (or, strict, fails) where the kernel has no tcx links
// (Linux < 6.6): there linux falls back to its relay, which the other
// network tests cover.
func requireTCX(t *testing.T) {
	t.Helper()
	var u syscall.Utsname
	syscall.Uname(&u)
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var major, minor int
	fmt.Sscanf(string(rel), "%d.%d", &major, &minor)
	if major < 6 || major == 6 && minor < 6 {
		testutil.Skip(t, "kernel %s has no tcx links (6.6 or later needed for the kernel data path)", rel)
	}
}

// TestIntegrationLinuxNetKernelPathHotplugKill: "config eth1=tuntap,TAP"
// through the mconsole joins the running guest's eth1 in the kernel (the
// guest and the namespace ping each other); "remove eth1" refuses while it
// is up and then takes the pair away. After a kill -9 of linux, nothing is
// left: no host end, and the tap carries a relayed guest's traffic again
// (a tcx program left on it would swallow what the host sends).
func TestIntegrationLinuxNetKernelPathHotplugKill(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	requireTCX(t)
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	ns := hostLink(t, true)
	umlDir := t.TempDir()
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo READY; exec sh"})
	g := harness.Start(t, nil, "ip", "netns", "exec", ns, harness.Bin(t, "linux"), "ubd0="+img, "init=/init",
		"uml_dir="+umlDir, "umid=kph")
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(umlDir, "kph", "mconsole")
	mconsole := func(cmd string) string {
		out, _ := testutil.InNetNS(ns, mc, sock, cmd).Output()
		return string(out)
	}
	guest := (&guestShell{t: t, g: g}).run
	if out := mconsole("config eth1=tuntap,vh1,02:00:0a:4d:09:02"); out != "OK \n" {
		t.Fatalf("config eth1= %q\n%s", out, g.Output())
	}
	if err := g.WaitOutput("eth1: kernel data path to host tap vh1", 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	guest("cat /sys/class/net/eth1/address", "02:00:0a:4d:09:02")
	guest("ifconfig eth1 10.77.9.2 netmask 255.255.255.0 up && ping -c 2 -W 5 10.77.9.1 >/dev/null && echo PING-OK", "PING-OK")
	if b, err := testutil.InNetNS(ns, "/bin/busybox", "ping", "-c", "2", "-W", "5", "10.77.9.2").CombinedOutput(); err != nil {
		t.Errorf("the namespace's ping of the guest: %v\n%s", err, b)
	}
	if n := len(hostEnds(t, ns)); n != 1 {
		t.Errorf("%d host ends in the namespace; want 1", n)
	}
	if out := mconsole("remove eth1"); out != "ERR Device is currently open\n" {
		t.Errorf("remove of an up eth1 = %q", out)
	}
	guest("ifconfig eth1 down", "")
	if out := mconsole("remove eth1"); out != "OK \n" {
		t.Errorf("remove eth1 = %q", out)
	}
	if left := hostEnds(t, ns); len(left) > 0 {
		t.Errorf("after remove eth1: host ends left: %v", left)
	}
	guest("[ -e /sys/class/net/eth1 ] || echo ETH1-GONE", "ETH1-GONE")

	// Again, then kill -9 linux (its kernel process dies with it).
	if out := mconsole("config eth1=tuntap,vh1"); out != "OK \n" {
		t.Fatalf("second config eth1= %q\n%s", out, g.Output())
	}
	if err := harness.WaitCount(g, "eth1: kernel data path to host tap vh1", 2, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	pids := linuxPidsIn(t, umlDir)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	g.Wait(bootTimeout)
	if err := testutil.WaitFor(10*time.Second, func() bool { return len(hostEnds(t, ns)) == 0 }); err != nil {
		t.Errorf("10 s after kill -9: host ends left: %v", hostEnds(t, ns))
	}
	// The tap is clean: a relayed guest pings the namespace through it,
	// and the namespace pings the guest (the host's frames leave the tap
	// through its descriptor again).
	r := harness.Start(t, []string{"UMLKIT_NET_RELAY=1"}, "ip", "netns", "exec", ns, harness.Bin(t, "linux"),
		"ubd0="+harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: netPingInit("10.77.9.2", "10.77.9.1", 8)}),
		"init=/init", "uml_dir="+t.TempDir(), "eth0=tuntap,vh1")
	if err := r.WaitOutput("PING-OK-10.77.9.2", 60*time.Second); err != nil {
		t.Fatalf("relayed guest after the kill: %v\n%s", err, r.Output())
	}
	if b, err := testutil.InNetNS(ns, "/bin/busybox", "ping", "-c", "2", "-W", "5", "10.77.9.2").CombinedOutput(); err != nil {
		t.Errorf("the namespace's ping of the relayed guest: %v\n%s", err, b)
	}
}

// linuxPidsIn returns the pid of the linux process whose machine lives
// under umlDir (its umid directory's pid file).
func linuxPidsIn(t *testing.T, umlDir string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(umlDir, "*", "pid"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no pid file under %s", umlDir)
	}
	return pids
}
