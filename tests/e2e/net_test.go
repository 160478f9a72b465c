package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/helperproto"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationTunctlMatchesReal runs the same sequence of tunctl command
// lines with our tunctl and Debian's, each in its own fresh network
// namespace, both found as plain "tunctl" through PATH (same argv[0]), and
// compares stdout, stderr and exit status byte for byte. Device names are
// not normalised: each namespace starts empty, so the kernel picks the same
// names.
func TestIntegrationTunctlMatchesReal(t *testing.T) {
	real := testutil.Peer(t, "tunctl", "uml-utilities")
	ours := harness.Bin(t, "tunctl")
	testutil.RequireTUN(t)
	nsOurs, nsReal := testutil.NetNS(t), testutil.NetNS(t)
	pathOurs := harness.PathDir(t, "tunctl", ours)
	pathReal := harness.PathDir(t, "tunctl", real)
	steps := [][]string{
		{},
		{"-b"},
		{"-t", "umltap0"},
		{"-b", "-t", "foo"},
		{"-u", "nobody", "-t", "t2"},
		{"-u", "0x10", "-t", "t3"},
		{"-u", "bogus"},
		{"-g", "bogus"},
		{"-g", "100", "-t", "t4"},
		{"-u", "nobody", "-g", "nogroup", "-t", "t5"},
		{"-u", "root", "-g", "root", "-b"},
		{"-d", "t5"},
		{"-d", "nonexist9"},
		{"-b", "-d", "t4"},
		{"-h"},
		{"-help"},
		{"-version"},
		{"-x"},
		{"-p"},
		{"-n"},
		{"--foo"},
		{"extra"},
		{"-t", "t9", "extra"},
		{"--", "-t", "x"},
		{"-t"},
		{"-d"},
		{"-f", "/nonexistent/tun"},
		{"-f", "/dev/null", "-t", "t15"},
		{"-t", "a/b"},
		{"-t", "a b"},
		{"-t", "aaaaaaaaaaaaaaaaaaaa"},
		{"-u", "-5", "-t", "t6"},
		{"-u", "12abc", "-t", "t7"},
		{"-g", "", "-t", "t8"},
		{"-t", "tun%d"},
		{"-u", "1000", "-t", "t2"},
		{"-bt", "t10"},
		{"-tt11"},
		{"-d", "t10", "-t", "t12"},
		{"-t", "t13", "-d", "t13"},
		{"-u", "1", "-u", "2", "-t", "t14"},
		{"-b"},
	}
	for _, args := range steps {
		argv := append([]string{"tunctl"}, args...)
		got := harness.RunInNetNS(t, nsOurs, []string{"PATH=" + pathOurs + ":/usr/bin:/bin"}, argv...)
		want := harness.RunInNetNS(t, nsReal, []string{"PATH=" + pathReal + ":/usr/bin:/bin"}, argv...)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("tunctl %q differs from Debian's (-real +ours):\n%s", args, d)
		}
	}
	// The resulting devices are the same too (name, owner, group, persist).
	links := func(ns string) string {
		r := harness.RunInNetNS(t, ns, nil, "ip", "-d", "-o", "link", "show", "type", "tun")
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			b.WriteString(f[1])
			for i, w := range f {
				if (w == "user" || w == "group" || w == "persist" || w == "type") && i+1 < len(f) && f[i-1] != "link/ether" {
					b.WriteString(" " + w + "=" + f[i+1])
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if d := cmp.Diff(links(nsReal), links(nsOurs)); d != "" {
		t.Errorf("devices differ (-real +ours):\n%s", d)
	}
	if !strings.Contains(links(nsOurs), "t14:") {
		t.Errorf("expected device t14 in:\n%s", links(nsOurs))
	}
}

// pingImage is a busybox root whose /init configures eth0 with addr (and
// netmask if not empty), pings peer and reports the status.
func pingImage(t *testing.T, addr, netmask, peer string) string {
	t.Helper()
	mask := ""
	if netmask != "" {
		mask = " netmask " + netmask
	}
	dir, err := os.MkdirTemp("", "umlkit-netimg-") // traversable by a non-root kernel
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return harness.BusyboxImage(t, dir, harness.Image{Init: "ifconfig eth0 " + addr + mask + " up\n" +
		"ping -c 3 -W 3 " + peer + "\necho PING-STATUS=$?\nifconfig eth0 down\npoweroff -f\n"})
}

func waitPing(t *testing.T, g *harness.Guest) {
	t.Helper()
	if err := g.WaitOutput("PING-STATUS=", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.Output(), "PING-STATUS=0") {
		t.Fatalf("guest ping failed:\n%s", g.Output())
	}
	if _, err := g.Wait(30 * time.Second); err != nil {
		t.Error(err)
	}
}

// TestIntegrationRealUMLWithOurUMLNet boots Debian's linux.uml inside a
// fresh netns with eth0=tuntap,,,HOST_IP and our uml_net first in PATH: the
// kernel execs it, receives the tap fd, runs the add hooks; the guest pings
// the host side. It runs as it would be deployed: the kernel as an
// unprivileged member of uml-net, uml_net a setuid-root copy (04754
// root:uml-net).
func TestIntegrationRealUMLWithOurUMLNet(t *testing.T) {
	testutil.RequireTUN(t)
	gid := groupGID(t, "uml-net")
	ns := testutil.NetNS(t)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	img := pingImage(t, "10.0.1.2", "", "10.0.1.1")
	g := harness.BootRealUMLInNetNSAs(t, ns, uidA, []int{gid}, []string{"PATH=" + filepath.Dir(helper) + ":/usr/bin:/bin:/usr/sbin:/sbin"},
		img, "eth0=tuntap,,,10.0.1.1", "umid=netuml")
	waitPing(t, g)
	out := g.Output()
	if testing.Verbose() {
		t.Logf("guest console:\n%s", out)
	}
	for _, want := range []string{
		"* ifconfig tap0 10.0.1.1 netmask 255.255.255.255 up",
		"* bash -c echo 1 > /proc/sys/net/ipv4/ip_forward",
		"* route add -host 10.0.1.2 dev tap0",
		"* bash -c echo 1 > /proc/sys/net/ipv4/conf/tap0/proxy_arp",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kernel log lacks %q", want)
		}
	}
	// The tap was not persistent: it went away with the kernel.
	if r := harness.RunInNetNS(t, ns, nil, "ip", "link", "show", "tap0"); r.Code == 0 {
		t.Errorf("tap0 still exists after the guest exited:\n%s", r.Stdout)
	}
}

// TestIntegrationRealUMLOnOurTunctlTap boots Debian's linux.uml, as an
// unprivileged user, with eth0=tuntap,umltap0 on a tap made by our
// tunctl -u <that uid>; the host side address is configured on the tap and
// the guest pings it.
func TestIntegrationRealUMLOnOurTunctlTap(t *testing.T) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	tunctl := harness.Bin(t, "tunctl")
	uid := strconv.Itoa(uidA)
	r := harness.RunInNetNS(t, ns, nil, tunctl, "-u", uid, "-t", "umltap0")
	if r.Code != 0 || r.Stdout != "Set 'umltap0' persistent and owned by uid "+uid+"\n" {
		t.Fatalf("tunctl = %+v", r)
	}
	for _, argv := range [][]string{{"ip", "addr", "add", "10.0.2.1/24", "dev", "umltap0"}, {"ip", "link", "set", "umltap0", "up"}} {
		if r := harness.RunInNetNS(t, ns, nil, argv...); r.Code != 0 {
			t.Fatalf("%q: %+v", argv, r)
		}
	}
	img := pingImage(t, "10.0.2.2", "255.255.255.0", "10.0.2.1")
	// The kernel runs as the tap's owner, without any privilege.
	g := harness.BootRealUMLInNetNSAs(t, ns, uidA, nil, nil, img, "eth0=tuntap,umltap0", "umid=nettunctl")
	waitPing(t, g)
	if r := harness.RunInNetNS(t, ns, nil, tunctl, "-d", "umltap0"); r.Code != 0 || r.Stdout != "Set 'umltap0' nonpersistent\n" {
		t.Errorf("tunctl -d = %+v", r)
	}
}

// ---- uml_net security, each property in its own network namespace ----

// umlNetGID returns the gid of group name, creating the group (removed at
// cleanup) if the machine lacks it.
func groupGID(t *testing.T, name string) int {
	t.Helper()
	lookup := func() (int, bool) {
		data, err := os.ReadFile("/etc/group")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Split(line, ":"); len(f) >= 3 && f[0] == name {
				gid, err := strconv.Atoi(f[2])
				return gid, err == nil
			}
		}
		return 0, false
	}
	if gid, ok := lookup(); ok {
		return gid
	}
	if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
		testutil.Skip(t, "groupadd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	gid, ok := lookup()
	if !ok {
		t.Fatalf("group %s missing after groupadd", name)
	}
	return gid
}

// installSetuid copies bin into a fresh world-traversable directory as
// uml_net, root:<gid>, with mode (e.g. 04754 as Debian installs it).
func installSetuid(t *testing.T, bin string, gid int, mode os.FileMode) string {
	t.Helper()
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "umlkit-umlnet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "uml_net")
	if err := os.WriteFile(p, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	return p
}

// cred is who runs the helper: uid 0 means root as is.
type cred struct {
	uid, gid int
	groups   []int
}

func (c cred) prefix() []string {
	if c.uid == 0 {
		return nil
	}
	gs := make([]string, len(c.groups))
	for i, g := range c.groups {
		gs[i] = strconv.Itoa(g)
	}
	return []string{"/usr/bin/setpriv", "--reuid=" + strconv.Itoa(c.uid), "--regid=" + strconv.Itoa(c.gid), "--groups=" + strings.Join(gs, ","), "--"}
}

// helperRun is one uml_net execution with fd 1 on a socketpair.
type helperRun struct {
	cmd    *exec.Cmd
	conn   *net.UnixConn
	stderr *bytes.Buffer
}

// startHelper starts uml_net args as c inside ns; stdout is a socketpair of
// type typ (unix.SOCK_DGRAM for tuntap up, unix.SOCK_STREAM otherwise).
// fill, if set, runs on the helper's end before the start (to fill its
// queue).
func startHelper(t *testing.T, ns, helper string, c cred, env []string, typ int, fill func(fd int), args ...string) *helperRun {
	t.Helper()
	mine, theirs, err := sys.FilePair(typ, "kernel-end", "helper-stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	if fill != nil {
		fill(int(theirs.Fd()))
	}
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"ip", "netns", "exec", ns}, c.prefix()...)
	if env != nil {
		// The hostile environment reaches only the helper's own exec.
		argv = append(append(argv, "/usr/bin/env", "-i"), env...)
	}
	argv = append(append(argv, helper), args...)
	r := &helperRun{cmd: exec.Command(argv[0], argv[1:]...), conn: fc.(*net.UnixConn), stderr: &bytes.Buffer{}}
	r.cmd.Stdout, r.cmd.Stderr = theirs, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.conn.Close()
	})
	return r
}

func (r *helperRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// tuntapUp runs `uml_net 4 tuntap up gate` and returns the reply (and the
// tap file, nil on failure), the exit status and stderr.
func tuntapUp(t *testing.T, ns, helper string, c cred, env []string, gate string) (helperproto.TuntapReply, *os.File, int, string) {
	t.Helper()
	r := startHelper(t, ns, helper, c, env, unix.SOCK_DGRAM, nil, "4", "tuntap", "up", gate)
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, files, _, err := fdpass.Recv(r.conn, 4096, 1)
	code := r.wait(t)
	var rep helperproto.TuntapReply
	if err != nil {
		rep.Text = helperproto.FailedTuntapText(data)
		return rep, nil, code, r.stderr.String()
	}
	if err := rep.UnmarshalBinary(data); err != nil {
		t.Fatalf("tuntap reply %q: %v", data, err)
	}
	t.Cleanup(func() { files[0].Close() })
	return rep, files[0], code, r.stderr.String()
}

// changeAddr runs `uml_net 4 <args>` with a stream socket and returns the
// length-prefixed text, exit status and stderr.
func changeAddr(t *testing.T, ns, helper string, c cred, args ...string) (string, int, string) {
	t.Helper()
	r := startHelper(t, ns, helper, c, nil, unix.SOCK_STREAM, nil, append([]string{"4"}, args...)...)
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, _ := io.ReadAll(r.conn)
	code := r.wait(t)
	text, _, err := helperproto.ParseLengthPrefixed(data)
	if err != nil && len(data) > 0 {
		t.Fatalf("reply %q: %v", data, err)
	}
	return text, code, r.stderr.String()
}

func linkAlias(t *testing.T, ns, dev string) string {
	t.Helper()
	r := harness.RunInNetNS(t, ns, nil, "cat", "/sys/class/net/"+dev+"/ifalias")
	if r.Code != 0 {
		return "<no " + dev + ">"
	}
	return strings.TrimSpace(r.Stdout)
}

func routes(t *testing.T, ns string) string {
	t.Helper()
	return harness.RunInNetNS(t, ns, nil, "ip", "-4", "route", "show", "table", "main").Stdout
}

const (
	uidA = 60006 // in uml-net
	uidB = 60008 // in uml-net
	uidC = 60007 // not in uml-net
)

// TestIntegrationUMLNetGroup: only root and members of uml-net (or of the
// group chosen at build time) get a tap.
func TestIntegrationUMLNetGroup(t *testing.T) {
	testutil.RequireTUN(t)
	testutil.Peer(t, "setpriv", "util-linux")
	gid := groupGID(t, "uml-net")
	ns := testutil.NetNS(t)
	bin := harness.Bin(t, "uml_net")
	debian := installSetuid(t, bin, gid, 0o754)
	world := installSetuid(t, bin, gid, 0o755) // a careless install: our own check must hold

	member := cred{uidA, uidA, []int{gid}}
	outsider := cred{uidC, uidC, []int{65534}}
	rep, tap, code, stderr := tuntapUp(t, ns, debian, member, nil, "10.0.5.1")
	if tap == nil || code != 0 || rep.Name != "tap0" || stderr != "" {
		t.Fatalf("member: reply %+v, fd %v, status %d, stderr %q", rep, tap, code, stderr)
	}
	if got := linkAlias(t, ns, "tap0"); got != "uml_net uid=60006" {
		t.Errorf("tap0 alias = %q; want uml_net uid=60006", got)
	}
	rep, tap, code, _ = tuntapUp(t, ns, debian, cred{}, nil, "10.0.6.1")
	if tap == nil || code != 0 || rep.Name != "tap1" {
		t.Errorf("root: reply %+v, status %d", rep, code)
	}
	// A careless 04755 install: our own check refuses outsiders.
	_, tap, code, stderr = tuntapUp(t, ns, world, outsider, nil, "10.0.7.1")
	want := "uml_net : permission denied: caller uid 60007 is neither root nor a member of group 'uml-net'\n"
	if tap != nil || code != 1 || stderr != want {
		t.Errorf("outsider on 04755 copy: fd %v, status %d, stderr %q; want status 1, %q", tap, code, stderr, want)
	}
	// Debian's 04754 root:uml-net: exec is refused by the kernel, or (on
	// filesystems that do not enforce the x bits for others) by our check.
	_, tap, code, stderr = tuntapUp(t, ns, debian, outsider, nil, "10.0.7.1")
	if tap != nil || code == 0 || !(strings.Contains(stderr, "Permission denied") || stderr == want) {
		t.Errorf("outsider on 04754 copy: fd %v, status %d, stderr %q; want refusal", tap, code, stderr)
	}
	if r := harness.RunInNetNS(t, ns, nil, "ip", "link", "show", "tap2"); r.Code == 0 {
		t.Errorf("an outsider's attempt created tap2")
	}

	// Build-time group name.
	other := "umlkit-t6grp"
	ogid := groupGID(t, other)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/uml_net", "-ldflags", "-X main.group="+other, "./cmd/uml_net")
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -X main.group: %v\n%s", err, out)
	}
	custom := installSetuid(t, dir+"/uml_net", ogid, 0o755)
	_, tap, code, stderr = tuntapUp(t, ns, custom, member, nil, "10.0.8.1")
	if tap != nil || code != 1 || !strings.Contains(stderr, "member of group '"+other+"'") {
		t.Errorf("uml-net member on a %s build: fd %v, status %d, stderr %q", other, tap, code, stderr)
	}
	rep, tap, code, _ = tuntapUp(t, ns, custom, cred{uidB, uidB, []int{ogid}}, nil, "10.0.8.1")
	if tap == nil || code != 0 || rep.Name == "" {
		t.Errorf("%s member on a %s build: reply %+v, status %d", other, other, rep, code)
	}
}

// TestIntegrationUMLNetIgnoresEnvironment: Debian's helper runs
// `bash -c ...` as root with the caller's environment, so BASH_ENV gives a
// uml-net member a root shell; ours clears the environment and runs no
// program. Hostile BASH_ENV, ENV, PATH (with fake route/ifconfig/bash/
// modprobe/arp) and LD_PRELOAD change nothing.
func TestIntegrationUMLNetIgnoresEnvironment(t *testing.T) {
	testutil.RequireTUN(t)
	testutil.Peer(t, "setpriv", "util-linux")
	gid := groupGID(t, "uml-net")
	ns := testutil.NetNS(t)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	trap, err := os.MkdirTemp("", "umlkit-trap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(trap) })
	os.Chmod(trap, 0o777)
	marker := filepath.Join(trap, "pwned")
	evil := "#!/bin/sh\nid -u >> " + marker + "\n"
	for _, name := range []string{"evil.sh", "route", "ifconfig", "bash", "modprobe", "arp", "sh"} {
		if err := os.WriteFile(filepath.Join(trap, name), []byte(evil), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"BASH_ENV=" + filepath.Join(trap, "evil.sh"), "ENV=" + filepath.Join(trap, "evil.sh"),
		"PATH=" + trap, "LD_PRELOAD=" + filepath.Join(trap, "evil.so"), "GODEBUG=panicnil=1", "GOTRACEBACK=crash", "GOGC=off"}
	member := cred{uidA, uidA, []int{gid}}

	rep, tap, code, stderr := tuntapUp(t, ns, helper, member, env, "10.0.9.1")
	if tap == nil || code != 0 || stderr != "" {
		t.Fatalf("tuntap up: reply %+v, status %d, stderr %q", rep, code, stderr)
	}
	text, code, _ := changeAddr(t, ns, helper, member, "add", rep.Name, "10.0.9.2", "255.255.255.0")
	if code != 0 {
		t.Fatalf("add: status %d, %q", code, text)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("our uml_net ran a program from the caller's environment (uids %q)", b)
	}
	if stderr != "" {
		t.Errorf("stderr = %q; want nothing", stderr)
	}

	// Contrast: Debian's helper, run the same way, executes BASH_ENV as root.
	// This proves the trap works.
	if _, err := os.Stat("/usr/bin/uml_net"); err == nil {
		realHelper := installSetuid(t, "/usr/bin/uml_net", gid, 0o754)
		ns2 := testutil.NetNS(t)
		r := startHelper(t, ns2, realHelper, member, env, unix.SOCK_DGRAM, nil, "4", "tuntap", "up", "10.0.9.1")
		r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		fdpass.Recv(r.conn, 4096, 1)
		r.wait(t)
		b, err := os.ReadFile(marker)
		if err != nil || !strings.Contains(string(b), "0") {
			t.Errorf("Debian's uml_net did not run BASH_ENV as root (marker %q, %v): the trap is not sensitive", b, err)
		}
	}
}

// TestIntegrationUMLNetValidatesArguments: hostile arguments are refused
// before any host change.
func TestIntegrationUMLNetValidatesArguments(t *testing.T) {
	testutil.RequireTUN(t)
	testutil.Peer(t, "setpriv", "util-linux")
	gid := groupGID(t, "uml-net")
	ns := testutil.NetNS(t)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	member := cred{uidA, uidA, []int{gid}}
	before := routes(t, ns)
	for _, gate := range []string{"10.0.0.1;reboot", "$(id)", "10.0.0.1 netmask 0.0.0.0", "0.0.0.0", "eth0", "010.0.0.1"} {
		rep, tap, _, _ := tuntapUp(t, ns, helper, member, nil, gate)
		if tap != nil || rep.Text != "Invalid gateway address '"+gate+"'\n" {
			t.Errorf("tuntap up %q: reply %+v, fd %v", gate, rep, tap)
		}
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"add", "tap0;reboot", "10.0.0.2", "255.255.255.0"}, helperproto.NotAlphanumeric},
		{[]string{"add", "../../x", "10.0.0.2", "255.255.255.0"}, helperproto.NotAlphanumeric},
		{[]string{"add", "aaaaaaaaaaaaaaaaaaaa", "10.0.0.2", "255.255.255.0"}, helperproto.NotAlphanumeric},
		{[]string{"del", "tap0", "10.0.0.2 dev eth0", "255.255.255.0"}, "Invalid address '10.0.0.2 dev eth0'\n"},
		{[]string{"add", "tap0", "10.0.0.2", "255.0.255.0"}, "Invalid netmask '255.0.255.0'\n"},
		{[]string{"tuntap", "add", "tap0", "127.0.0.1", "255.0.0.0"}, "Invalid address '127.0.0.1'\n"},
		{[]string{"add", "tap0", "10.0.0.2"}, "uml_net : too few arguments to add\n"},
		{[]string{"slip", "down", "sl0/../x"}, helperproto.NotAlphanumeric},
	}
	for _, c := range cases {
		text, _, _ := changeAddr(t, ns, helper, member, c.args...)
		if text != c.want {
			t.Errorf("uml_net 4 %q = %q; want %q", c.args, text, c.want)
		}
	}
	if r := harness.RunInNetNS(t, ns, nil, "ip", "-o", "link"); strings.Count(r.Stdout, "\n") != 1 {
		t.Errorf("refused requests created links:\n%s", r.Stdout)
	}
	if after := routes(t, ns); after != before {
		t.Errorf("refused requests changed routes:\n%s", after)
	}
}

// TestIntegrationUMLNetOwnership: add/del only act on taps this helper
// created for the same user.
func TestIntegrationUMLNetOwnership(t *testing.T) {
	testutil.RequireTUN(t)
	testutil.Peer(t, "setpriv", "util-linux")
	gid := groupGID(t, "uml-net")
	ns := testutil.NetNS(t)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	a, b := cred{uidA, uidA, []int{gid}}, cred{uidB, uidB, []int{gid}}
	rep, tap, _, _ := tuntapUp(t, ns, helper, a, nil, "10.0.10.1")
	if tap == nil {
		t.Fatalf("tuntap up: %+v", rep)
	}
	// A tap made by tunctl for user B, and the loopback device.
	if r := harness.RunInNetNS(t, ns, nil, harness.Bin(t, "tunctl"), "-u", strconv.Itoa(uidB), "-t", "btap"); r.Code != 0 {
		t.Fatal(r)
	}
	refuse := []struct {
		who  cred
		name string
		dev  string
	}{{b, "other member", rep.Name}, {cred{}, "root", rep.Name}, {b, "owner of a tunctl tap", "btap"}, {a, "member", "lo"}}
	for _, r := range refuse {
		for _, op := range []string{"add", "del"} {
			text, code, _ := changeAddr(t, ns, helper, r.who, op, r.dev, "10.0.10.2", "255.255.255.0")
			if code == 0 || !strings.Contains(text, "refusing to touch "+r.dev) {
				t.Errorf("%s %s on %s: status %d, %q; want refusal", r.name, op, r.dev, code, text)
			}
		}
	}
	if got := routes(t, ns); strings.Contains(got, "10.0.10.2") {
		t.Errorf("a refused add left a route:\n%s", got)
	}
	text, code, _ := changeAddr(t, ns, helper, a, "add", rep.Name, "10.0.10.2", "255.255.255.0")
	want := "* route add -host 10.0.10.2 dev " + rep.Name + "\n* bash -c echo 1 > /proc/sys/net/ipv4/conf/" + rep.Name + "/proxy_arp\n"
	if code != 0 || text != want {
		t.Errorf("owner add: status %d, %q; want %q", code, text, want)
	}
	if got := routes(t, ns); !strings.Contains(got, "10.0.10.2 dev "+rep.Name) {
		t.Errorf("owner add: no host route:\n%s", got)
	}
	if r := harness.RunInNetNS(t, ns, nil, "cat", "/proc/sys/net/ipv4/conf/"+rep.Name+"/proxy_arp"); r.Stdout != "1\n" {
		t.Errorf("proxy_arp = %q; want 1", r.Stdout)
	}
	text, code, _ = changeAddr(t, ns, helper, a, "tuntap", "del", rep.Name, "10.0.10.2", "255.255.255.0")
	if code != 0 || !strings.HasPrefix(text, "* route del -host 10.0.10.2 dev "+rep.Name+"\n") {
		t.Errorf("owner del: status %d, %q", code, text)
	}
	if got := routes(t, ns); strings.Contains(got, "10.0.10.2") {
		t.Errorf("owner del left the route:\n%s", got)
	}
}

// TestIntegrationUMLNetDropsPrivileges: with the reply blocked on a full
// socket, the helper is already running with the caller's uids and gids
// and no capabilities, after having created and configured the tap.
func TestIntegrationUMLNetDropsPrivileges(t *testing.T) {
	testutil.RequireTUN(t)
	testutil.Peer(t, "setpriv", "util-linux")
	gid := groupGID(t, "uml-net")
	ns := testutil.NetNS(t)
	helper := installSetuid(t, harness.Bin(t, "uml_net"), gid, 0o754)
	member := cred{uidA, uidA, []int{gid}}
	filler := []byte("filler")
	fill := func(fd int) {
		for i := 0; i < 100000; i++ {
			if err := unix.Sendmsg(fd, filler, nil, nil, unix.MSG_DONTWAIT); err != nil {
				return
			}
		}
		t.Fatal("could not fill the reply socket")
	}
	r := startHelper(t, ns, helper, member, nil, unix.SOCK_DGRAM, fill, "4", "tuntap", "up", "10.0.11.1")
	pid := r.cmd.Process.Pid
	want := map[string]string{"Uid": "60006\t60006\t60006\t60006", "Gid": "60006\t60006\t60006\t60006", "CapEff": "0000000000000000", "CapPrm": "0000000000000000"}
	var status map[string]string
	err := testutil.WaitFor(10*time.Second, func() bool {
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil || exe != helper {
			return false // still ip or setpriv
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return false
		}
		status = map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				status[k] = strings.TrimSpace(v)
			}
		}
		return status["Uid"] == want["Uid"]
	})
	if err != nil {
		t.Fatalf("helper never dropped to uid %d before replying: status %v", uidA, status)
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("while replying, %s = %q; want %q", k, status[k], v)
		}
	}
	// The work was done before the drop: the tap is up with its address.
	if out := harness.RunInNetNS(t, ns, nil, "ip", "-4", "-o", "addr", "show", "dev", "tap0").Stdout; !strings.Contains(out, "10.0.11.1/32") {
		t.Errorf("tap0 not configured while the reply is pending: %q", out)
	}
	// Drain the filler; the reply with the fd follows.
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
		var rep helperproto.TuntapReply
		if rep.UnmarshalBinary(data); rep.Name != "tap0" {
			t.Errorf("reply = %+v", rep)
		}
		break
	}
	if code := r.wait(t); code != 0 {
		t.Errorf("status %d", code)
	}
}

// TestIntegrationUMLNetMatchesRealReplies runs command lines whose replies
// do not depend on host commands through our uml_net and Debian's, each in
// its own netns as root with fd 1 a stream socket (a datagram socket for
// tuntap up) and fd 0 /dev/null, and compares reply bytes, stderr and exit
// status.
func TestIntegrationUMLNetMatchesRealReplies(t *testing.T) {
	testutil.RequireTUN(t)
	realBin := testutil.Peer(t, "uml_net", "uml-utilities")
	ours := harness.Bin(t, "uml_net")
	nsOurs, nsReal := testutil.NetNS(t), testutil.NetNS(t)
	run := func(ns, bin string, typ int, args []string) (string, string, int) {
		r := startHelper(t, ns, bin, cred{}, nil, typ, nil, args...)
		r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var data []byte
		if typ == unix.SOCK_DGRAM {
			buf := make([]byte, 4096)
			if n, err := r.conn.Read(buf); err == nil {
				data = buf[:n]
			}
		} else {
			data, _ = io.ReadAll(r.conn)
		}
		code := r.wait(t)
		return string(data), r.stderr.String(), code
	}
	cases := []struct {
		typ  int
		args []string
	}{
		{unix.SOCK_STREAM, []string{}},
		{unix.SOCK_STREAM, []string{"4"}},
		{unix.SOCK_STREAM, []string{"5", "tuntap", "up"}},
		{unix.SOCK_STREAM, []string{"-1", "add", "a", "b", "c"}},
		{unix.SOCK_STREAM, []string{"4", "foo", "x"}},
		{unix.SOCK_STREAM, []string{"x", "y", "z"}},
		{unix.SOCK_STREAM, []string{"tuntap", "up", "10.0.0.1"}},
		{unix.SOCK_STREAM, []string{"1", "tuntap", "up", "10.0.0.1"}},
		{unix.SOCK_STREAM, []string{"3", "add", "tap0", "1.2.3.4", "255.0.0.0"}},
		{unix.SOCK_STREAM, []string{"4", "tuntap"}},
		{unix.SOCK_STREAM, []string{"4", "tuntap", "foo"}},
		{unix.SOCK_STREAM, []string{"4", "tuntap", "add"}},
		{unix.SOCK_DGRAM, []string{"4", "tuntap", "up"}},
		{unix.SOCK_STREAM, []string{"4", "add", "ta-p", "1.2.3.4", "255.0.0.0"}},
		{unix.SOCK_STREAM, []string{"4", "ethertap"}},
		{unix.SOCK_STREAM, []string{"4", "ethertap", "tap0"}},
		{unix.SOCK_STREAM, []string{"4", "ethertap", "tapx", "3"}},
		{unix.SOCK_STREAM, []string{"4", "slip"}},
		{unix.SOCK_STREAM, []string{"4", "slip", "up"}},
		{unix.SOCK_STREAM, []string{"4", "slip", "foo", "bar"}},
		{unix.SOCK_STREAM, []string{"4", "slip", "up", "10.1.1.1"}},
		{unix.SOCK_STREAM, []string{"4", "slip", "down", "sl0"}},
	}
	for _, c := range cases {
		out, errs, code := run(nsOurs, ours, c.typ, c.args)
		wout, werrs, wcode := run(nsReal, realBin, c.typ, c.args)
		if out != wout || errs != werrs || code != wcode {
			t.Errorf("uml_net %q:\n ours: %q %q %d\n real: %q %q %d", c.args, out, errs, code, wout, werrs, wcode)
		}
	}
	// Debian's helper would mknod /dev/tap0 on the host for this one, so only
	// ours runs; the expected bytes were captured from Debian's on a host
	// without ethertap (status 0, then "open: No such device or address").
	out, _, code := run(nsOurs, ours, unix.SOCK_STREAM, []string{"4", "ethertap", "tap0", "3"})
	want := string(helperproto.AppendLengthPrefixed([]byte{0}, "open: No such device or address\n"))
	if out != want || code != 1 {
		t.Errorf("ethertap tap0 3: %q %d; want %q 1", out, code, want)
	}
}
