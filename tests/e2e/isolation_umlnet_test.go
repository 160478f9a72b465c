package e2e

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// The uml_net policy (issue 13, docs/uml_net.md "Policy"): a caller may not
// give its tap, or route into it, an address of the host, of its gateway, of
// a host LAN's network/broadcast or of a machine on the LAN, nor a remote
// address; proxy ARP only for addresses routed to its own tap; ip_forward
// and proxy_arp go back to their old values with the last tap/address.
//
// Every test builds a small world of two network namespaces: "host" (where
// the helper runs: 10.99.0.2/24 on vh, default route via 10.99.0.1) and
// "lan" (the gateway 10.99.0.1 and a LAN machine 10.99.0.3 on vg). Nothing
// leaves them; 8.8.8.8 is only ever an argument.

const (
	lanGW    = "10.99.0.1"
	lanHost  = "10.99.0.2" // the host's own address
	lanPeer  = "10.99.0.3" // another machine on the LAN
	lanFree  = "10.99.0.50"
	lanMask  = "255.255.255.0"
	remoteIP = "8.8.8.8"
)

// lanWorld makes the two namespaces and returns the host one.
func lanWorld(t *testing.T) string {
	t.Helper()
	host, lan := testutil.NetNS(t), testutil.NetNS(t)
	for _, argv := range [][]string{
		{"ip", "-n", host, "link", "add", "vh", "type", "veth", "peer", "name", "vg", "netns", lan},
		{"ip", "-n", host, "addr", "add", lanHost + "/24", "dev", "vh"},
		{"ip", "-n", host, "link", "set", "vh", "up"},
		{"ip", "-n", host, "route", "add", "default", "via", lanGW},
		{"ip", "-n", lan, "addr", "add", lanGW + "/24", "dev", "vg"},
		{"ip", "-n", lan, "addr", "add", lanPeer + "/24", "dev", "vg"},
		{"ip", "-n", lan, "link", "set", "vg", "up"},
	} {
		r := harness.RunInNetNS(t, host, nil, argv...)
		if r.Code != 0 {
			t.Fatalf("%q: %+v", argv, r)
		}
	}
	// The host talks to the LAN machine: its ARP entry marks the address
	// as taken.
	if err := testutil.WaitFor(10*time.Second, func() bool {
		harness.RunInNetNS(t, host, nil, "bash", "-c", "echo x > /dev/udp/"+lanPeer+"/9")
		out := harness.RunInNetNS(t, host, nil, "ip", "neigh", "show", lanPeer, "dev", "vh").Stdout
		return strings.Contains(out, "REACHABLE") || strings.Contains(out, "STALE")
	}); err != nil {
		t.Fatalf("no ARP entry for %s in the host namespace: %v", lanPeer, err)
	}
	return host
}

// hostState is what a refused request must not change.
func hostState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(routes(t, ns))
	b.WriteString("-- proxy:\n")
	b.WriteString(harness.RunInNetNS(t, ns, nil, "ip", "-4", "neigh", "show", "proxy").Stdout)
	b.WriteString("-- ip_forward=" + sysctl(t, ns, "net/ipv4/ip_forward") + "\n")
	b.WriteString("-- links:\n")
	b.WriteString(harness.RunInNetNS(t, ns, nil, "ip", "-o", "-4", "addr").Stdout)
	return b.String()
}

func sysctl(t *testing.T, ns, rel string) string {
	t.Helper()
	r := harness.RunInNetNS(t, ns, nil, "cat", "/proc/sys/"+rel)
	if r.Code != 0 {
		return "<none>"
	}
	return strings.TrimSpace(r.Stdout)
}

func proxyEntries(t *testing.T, ns string) string {
	return harness.RunInNetNS(t, ns, nil, "ip", "-4", "neigh", "show", "proxy").Stdout
}

// member returns umlkittest as a member of uml-net, and the helper
// installed setuid root:uml-net 04754.
func umlNetMember(t *testing.T) (cred, string) {
	t.Helper()
	testutil.RequireTUN(t)
	testutil.Peer(t, "setpriv", "util-linux")
	u := harness.UnprivilegedUser(t)
	gid := groupGID(t, "uml-net")
	return cred{int(u.UID), int(u.GID), []int{int(u.GID), gid}}, strconv.Itoa(gid)
}

// TestIntegrationIsolationUMLNetPolicy runs each out-of-policy request
// through our setuid uml_net as an unprivileged uml-net member (and a few
// as root), checks the one-line refusal and that the host namespace did not
// change, then checks the allowed cases and that ip_forward, proxy_arp and
// the published proxy ARP entries return to their old values.
func TestIntegrationIsolationUMLNetPolicy(t *testing.T) {
	member, gidS := umlNetMember(t)
	gid, _ := strconv.Atoi(gidS)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	ns := lanWorld(t)
	if got := sysctl(t, ns, "net/ipv4/ip_forward"); got != "0" {
		t.Fatalf("a fresh namespace has ip_forward=%s", got)
	}

	refusedUp := func(who cred, gate, reason string) {
		t.Helper()
		before := hostState(t, ns)
		rep, tap, code, stderr := tuntapUp(t, ns, helper, who, nil, gate)
		want := "uml_net : refusing " + gate + " as tap address: " + reason
		if tap != nil || code == 0 || !strings.HasPrefix(rep.Text, want) || strings.Count(rep.Text, "\n") != 1 {
			t.Errorf("tuntap up %s: fd %v, status %d, text %q, stderr %q; want a refusal starting %q", gate, tap, code, rep.Text, stderr, want)
		}
		if after := hostState(t, ns); after != before {
			t.Errorf("refused tuntap up %s changed the host:\n%s\nwas:\n%s", gate, after, before)
		}
	}
	refusedUp(member, lanGW, "it is the gateway of the host's route default via "+lanGW+" dev vh")
	refusedUp(member, lanHost, "it is an address of this host (on vh)")
	refusedUp(member, "10.99.0.0", "it is the network address of the host's LAN 10.99.0.0/24 on vh")
	refusedUp(member, "10.99.0.255", "it is the broadcast address of the host's LAN 10.99.0.0/24 on vh")
	refusedUp(member, lanPeer, "a machine on vh answers for it (ARP)")
	refusedUp(member, remoteIP, "it is a remote address, reached through the host's route default via "+lanGW+" dev vh")
	refusedUp(cred{}, lanGW, "it is the gateway") // root is bound too

	rep, tap0, code, _ := tuntapUp(t, ns, helper, member, nil, "10.0.1.1")
	if tap0 == nil || code != 0 {
		t.Fatalf("tuntap up 10.0.1.1: %+v, status %d", rep, code)
	}
	dev := rep.Name
	if got := sysctl(t, ns, "net/ipv4/ip_forward"); got != "1" {
		t.Errorf("ip_forward after tuntap up = %s; want 1", got)
	}

	refusedAddr := func(who cred, op, addr, mask, reason string) {
		t.Helper()
		before := hostState(t, ns)
		text, code, stderr := changeAddr(t, ns, helper, who, op, dev, addr, mask)
		want := "uml_net : refusing " + addr + " as guest address: " + reason
		if code == 0 || !strings.HasPrefix(text, want) || strings.Count(text, "\n") != 1 {
			t.Errorf("%s %s %s %s: status %d, %q, stderr %q; want a refusal starting %q", op, dev, addr, mask, code, text, stderr, want)
		}
		if after := hostState(t, ns); after != before {
			t.Errorf("refused %s %s changed the host:\n%s\nwas:\n%s", op, addr, after, before)
		}
	}
	refusedAddr(member, "add", remoteIP, "255.255.255.255", "it is a remote address")
	refusedAddr(member, "del", remoteIP, "255.255.255.255", "it is not routed to "+dev)
	refusedAddr(member, "add", lanGW, lanMask, "it is the gateway")
	refusedAddr(member, "add", lanPeer, lanMask, "a machine on vh answers for it (ARP)")
	refusedAddr(member, "add", lanHost, lanMask, "it is an address of this host (on vh)")
	refusedAddr(member, "add", "10.99.0.255", lanMask, "it is the broadcast address")
	refusedAddr(member, "add", "10.0.1.1", "255.255.255.255", "it is an address of this host (on "+dev+")")
	// A route through a gateway other than the default route.
	harness.RunInNetNS(t, ns, nil, "ip", "route", "add", "172.30.0.0/16", "via", lanGW)
	refusedAddr(member, "add", "172.30.0.9", "255.255.0.0", "it is a remote address, reached through the host's route 172.30.0.0/16 via "+lanGW)

	// Root runs the same hooks on behalf of a guest (linux as root): same
	// rules, on its own tap.
	rootRep, rootTap, _, _ := tuntapUp(t, ns, helper, cred{}, nil, "10.0.2.1")
	if rootTap == nil {
		t.Fatalf("root tuntap up: %+v", rootRep)
	}
	text, code, _ := changeAddr(t, ns, helper, cred{}, "add", rootRep.Name, remoteIP, "255.255.255.255")
	if code == 0 || !strings.HasPrefix(text, "uml_net : refusing 8.8.8.8 as guest address: it is a remote address") {
		t.Errorf("root add %s 8.8.8.8: status %d, %q; want refusal", rootRep.Name, code, text)
	}

	// Allowed: a free LAN address (proxy ARP on the LAN) and a private one.
	text, code, _ = changeAddr(t, ns, helper, member, "add", dev, lanFree, lanMask)
	wantAdd := "* route add -host " + lanFree + " dev " + dev + "\n* bash -c echo 1 > /proc/sys/net/ipv4/conf/" + dev +
		"/proxy_arp\n* arp -Ds " + lanFree + " vh pub\n"
	if code != 0 || text != wantAdd {
		t.Errorf("add %s: status %d, %q; want %q", lanFree, code, text, wantAdd)
	}
	if got := proxyEntries(t, ns); !strings.Contains(got, lanFree+" dev vh") {
		t.Errorf("no proxy ARP entry for %s on vh:\n%s", lanFree, got)
	}
	if text, code, _ := changeAddr(t, ns, helper, member, "add", dev, "10.0.1.2", "255.255.255.255"); code != 0 {
		t.Errorf("add 10.0.1.2: status %d, %q", code, text)
	}
	// Another member may not take what is routed to this tap.
	other := cred{uidB, uidB, []int{gid}}
	oRep, oTap, _, _ := tuntapUp(t, ns, helper, other, nil, "10.0.3.1")
	if oTap == nil {
		t.Fatalf("second member's tuntap up: %+v", oRep)
	}
	if text, code, _ := changeAddr(t, ns, helper, other, "add", oRep.Name, "10.0.1.2", "255.255.255.255"); code == 0 ||
		!strings.Contains(text, "it is routed to "+dev+", a uml_net tap of another user") {
		t.Errorf("other member takes 10.0.1.2: status %d, %q; want refusal", code, text)
	}
	if text, code, _ := changeAddr(t, ns, helper, other, "add", oRep.Name, lanFree, lanMask); code == 0 ||
		!strings.Contains(text, "refusing "+lanFree) {
		t.Errorf("other member takes %s: status %d, %q; want refusal", lanFree, code, text)
	}
	if text, code, _ := changeAddr(t, ns, helper, other, "del", oRep.Name, lanFree, lanMask); code == 0 ||
		!strings.Contains(text, "it is not routed to "+oRep.Name) {
		t.Errorf("other member deletes %s: status %d, %q; want refusal", lanFree, code, text)
	}
	if got := proxyEntries(t, ns); !strings.Contains(got, lanFree+" dev vh") {
		t.Errorf("another member's refused del removed the proxy ARP entry of %s:\n%s", lanFree, got)
	}
	oTap.Close()

	// proxy_arp: 1 while an address is routed to the tap, back to 0 with
	// the last one.
	pa := "net/ipv4/conf/" + dev + "/proxy_arp"
	if got := sysctl(t, ns, pa); got != "1" {
		t.Errorf("%s = %s; want 1", pa, got)
	}
	if text, code, _ := changeAddr(t, ns, helper, member, "del", dev, "10.0.1.2", "255.255.255.255"); code != 0 || strings.Contains(text, "proxy_arp") {
		t.Errorf("del 10.0.1.2 (one address left): status %d, %q; want success without a proxy_arp change", code, text)
	}
	if got := sysctl(t, ns, pa); got != "1" {
		t.Errorf("%s after deleting one of two addresses = %s; want 1", pa, got)
	}
	text, code, _ = changeAddr(t, ns, helper, member, "del", dev, lanFree, lanMask)
	wantDel := "* route del -host " + lanFree + " dev " + dev + "\n* bash -c echo 0 > /proc/sys/net/ipv4/conf/" + dev +
		"/proxy_arp\n* arp -i vh -d " + lanFree + " pub\n"
	if code != 0 || text != wantDel {
		t.Errorf("del %s: status %d, %q; want %q", lanFree, code, text, wantDel)
	}
	if got := sysctl(t, ns, pa); got != "0" {
		t.Errorf("%s after the last address = %s; want 0", pa, got)
	}
	if got := proxyEntries(t, ns); got != "" {
		t.Errorf("proxy ARP entries left after del:\n%s", got)
	}

	// A second tap of the member with the same host-side address is fine
	// (several machines of one user share it).
	rep1, tap1, code, _ := tuntapUp(t, ns, helper, member, nil, "10.0.1.1")
	if tap1 == nil || code != 0 {
		t.Fatalf("second tuntap up 10.0.1.1: %+v, status %d", rep1, code)
	}
	if text, code, _ := changeAddr(t, ns, helper, member, "add", rep1.Name, lanFree, lanMask); code != 0 {
		t.Fatalf("add %s on %s: status %d, %q", lanFree, rep1.Name, code, text)
	}

	// The taps go away when their descriptors close (the kernel exits):
	// the proxy ARP entry of the guest and ip_forward follow the last one.
	tap0.Close()
	rootTap.Close()
	time.Sleep(500 * time.Millisecond)
	if got := sysctl(t, ns, "net/ipv4/ip_forward"); got != "1" {
		t.Errorf("ip_forward = %s while %s is still there; want 1", got, rep1.Name)
	}
	tap1.Close()
	if err := testutil.WaitFor(15*time.Second, func() bool {
		return sysctl(t, ns, "net/ipv4/ip_forward") == "0" && proxyEntries(t, ns) == ""
	}); err != nil {
		t.Errorf("after the last tap went: ip_forward=%s, proxy entries %q; want 0 and none",
			sysctl(t, ns, "net/ipv4/ip_forward"), proxyEntries(t, ns))
	}
	if _, err := os.Stat("/run/uml_net"); err != nil {
		t.Errorf("state directory: %v", err)
	}
}

// TestIntegrationIsolationUMLNetRuntimeEnv runs our setuid helper with the
// Go runtime's variables set. The process that does the work must have an
// empty environment, and only the first image (which drops root before it
// re-executes itself) may have seen them.
func TestIntegrationIsolationUMLNetRuntimeEnv(t *testing.T) {
	member, gidS := umlNetMember(t)
	gid, _ := strconv.Atoi(gidS)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	ns := testutil.NetNS(t)
	env := []string{"GODEBUG=inittrace=1,gctrace=1", "GOTRACEBACK=crash", "GOMAXPROCS=1", "GOGC=1", "GOMEMLIMIT=1"}
	filler := []byte("filler")
	fill := func(fd int) {
		for i := 0; i < 100000; i++ {
			if err := unix.Sendmsg(fd, filler, nil, nil, unix.MSG_DONTWAIT); err != nil {
				return
			}
		}
		t.Fatal("could not fill the reply socket")
	}
	r := startHelper(t, ns, helper, member, env, unix.SOCK_DGRAM, fill, "4", "tuntap", "up", "10.0.12.1")
	pid := strconv.Itoa(r.cmd.Process.Pid)
	var environ []byte
	err := testutil.WaitFor(10*time.Second, func() bool {
		if exe, err := os.Readlink("/proc/" + pid + "/exe"); err != nil || exe != helper {
			return false
		}
		b, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil || !strings.Contains(string(b), "\nUid:\t"+strconv.Itoa(member.uid)+"\t"+strconv.Itoa(member.uid)+"\t") {
			return false // not yet at the reply
		}
		// The first image drops its ids too (before its exec): only the
		// image that made the tap is at the reply.
		out := harness.RunInNetNS(t, ns, nil, "ip", "-4", "-o", "addr", "show", "dev", "tap0").Stdout
		if !strings.Contains(out, "10.0.12.1/32") {
			return false
		}
		environ, err = os.ReadFile("/proc/" + pid + "/environ")
		return err == nil
	})
	if err != nil {
		t.Fatalf("the helper never reached its reply: %v", err)
	}
	if len(environ) != 0 {
		t.Errorf("the working helper's environment = %q; want empty", environ)
	}
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		data, files, _, err := fdpass.Recv(r.conn, 4096, 1)
		if errors.Is(err, fdpass.ErrNoFD) && bytes.Equal(data, filler) {
			continue
		}
		if err != nil {
			t.Fatalf("reply: %q, %v", data, err)
		}
		files[0].Close()
		break
	}
	if code := r.wait(t); code != 0 {
		t.Errorf("status %d", code)
	}
	stderr := r.stderr.String()
	// inittrace prints one line per package init and gctrace one per
	// collection: the Makefile's uml_net starts at an entry point that
	// re-executes itself with an empty environment before the Go runtime
	// reads it (cmd/uml_net/entry_amd64.s), so no image may print any.
	var initLines []string
	gcLines := 0
	for _, l := range strings.Split(stderr, "\n") {
		switch {
		case strings.HasPrefix(l, "init "):
			initLines = append(initLines, l)
		case strings.HasPrefix(l, "gc "):
			gcLines++
		}
	}
	if len(initLines) > 0 || gcLines > 0 {
		t.Errorf("the setuid image's runtime honoured the caller's GODEBUG (%d init lines, %d gc lines):\n%s", len(initLines), gcLines, stderr)
	}
}

// TestIntegrationIsolationUMLNetRealHelper sends the same out-of-policy
// requests to Debian's uml_net (setuid root:uml-net, run by the same member)
// in the same kind of namespaces and logs what it allows, for the docs.
func TestIntegrationIsolationUMLNetRealHelper(t *testing.T) {
	realBin := testutil.Peer(t, "uml_net", "uml-utilities")
	member, gidS := umlNetMember(t)
	gid, _ := strconv.Atoi(gidS)
	helper := installSetuid(t, realBin, gid, 0o754)

	// try builds a fresh world, runs prep (not measured: e.g. the tap the
	// request is about), then act, and reports whether act changed the host.
	try := func(what string, prep func(ns string) string, act func(ns, tap string) string) {
		ns := lanWorld(t)
		tap := ""
		if prep != nil {
			tap = prep(ns)
		}
		before := hostState(t, ns)
		res := act(ns, tap)
		after := hostState(t, ns)
		verdict := "refused (host unchanged)"
		if after != before {
			verdict = "ALLOWED, host changed"
		}
		t.Logf("real uml_net, %s: %s\n  reply: %q\n  host after:\n%s", what, verdict, res, indent(after))
	}
	up := func(gate string) func(ns, tap string) string {
		return func(ns, _ string) string {
			rep, tap, code, stderr := tuntapUp(t, ns, helper, member, nil, gate)
			if tap != nil {
				t.Cleanup(func() { tap.Close() })
			}
			return rep.Name + " " + rep.Text + " status=" + strconv.Itoa(code) + " " + stderr
		}
	}
	try("tap address = the gateway "+lanGW, nil, up(lanGW))
	try("tap address = the host's "+lanHost, nil, up(lanHost))
	try("tap address = LAN machine "+lanPeer, nil, up(lanPeer))
	try("tap address = remote "+remoteIP, nil, up(remoteIP))
	mkTap := func(ns string) string {
		rep, tap, _, _ := tuntapUp(t, ns, helper, member, nil, "10.0.1.1")
		if tap == nil {
			t.Fatalf("real tuntap up: %+v", rep)
		}
		return rep.Name
	}
	hook := func(op, addr, mask string) func(ns, tap string) string {
		return func(ns, tap string) string {
			text, code, stderr := changeAddr(t, ns, helper, member, op, tap, addr, mask)
			return text + " status=" + strconv.Itoa(code) + " " + stderr
		}
	}
	try("add route for remote "+remoteIP+" into its tap", mkTap, hook("add", remoteIP, "255.255.255.255"))
	try("add the gateway "+lanGW+" (route + proxy ARP on the LAN)", mkTap, hook("add", lanGW, lanMask))
	try("add LAN machine "+lanPeer+" (proxy ARP for a used LAN address)", mkTap, hook("add", lanPeer, lanMask))
	try("add the host's own "+lanHost, mkTap, hook("add", lanHost, lanMask))
	// Someone else's guest is proxied on the LAN (entry made by root here);
	// the member deletes it through its own tap.
	try("del of another guest's "+lanFree+" (its proxy ARP entry on the LAN)", func(ns string) string {
		harness.RunInNetNS(t, ns, nil, "ip", "neigh", "add", "proxy", lanFree, "dev", "vh")
		return mkTap(ns)
	}, hook("del", lanFree, lanMask))

	// ip_forward after the last tap.
	ns := lanWorld(t)
	if _, tap, _, _ := tuntapUp(t, ns, helper, member, nil, "10.0.1.1"); tap != nil {
		tap.Close()
	}
	time.Sleep(2 * time.Second)
	t.Logf("real uml_net: ip_forward 0 before the tap, %s after its last tap went",
		sysctl(t, ns, "net/ipv4/ip_forward"))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
