package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/cgroup"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// Host cgroups of linux (issue 16, item 3): an ordinary user without a
// writable cgroup gets a delegated scope from the user's systemd manager,
// or one line and a panicking systemd guest instead of a frozen one; what
// a linux killed with SIGKILL leaves is removed by the next start of the
// same umid and by linux --cleanup, live machines untouched.

// v2Root returns the unified hierarchy's mount point.
func v2Root(t *testing.T) string {
	t.Helper()
	mnt, err := cgroup.V2Mount()
	if err != nil {
		testutil.Skip(t, "%v", err)
	}
	return mnt
}

// testCgroup makes the root-owned cgroup e2e-umlkit-NAME-PID below parent
// (never named like a machine cgroup, so no sweep takes it) and removes it
// at cleanup, killing what is left in it first.
func testCgroup(t *testing.T, parent, name string) string {
	t.Helper()
	cg := filepath.Join(parent, fmt.Sprintf("e2e-umlkit-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cgroup.Kill(cg)
		testutil.WaitFor(5*time.Second, func() bool { p, err := cgroup.Populated(cg); return err != nil || !p })
		sys.RmdirTree(cg)
	})
	return cg
}

// delegate gives the cgroup to u as systemd delegates one (user@UID.service).
func delegate(t *testing.T, cg string, u *harness.TestUser) {
	t.Helper()
	for _, f := range []string{"", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"} {
		if err := os.Chown(filepath.Join(cg, f), int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
}

// asUserIn is argv run as u from the cgroup cg, with a clean environment
// plus env: as a login that su or ssh without logind would give.
func asUserIn(cg string, u *harness.TestUser, env []string, argv ...string) []string {
	a := []string{"sh", "-c", `echo $$ > "$0"/cgroup.procs && exec "$@"`, cg,
		"setpriv", "--reuid=" + itoa(int(u.UID)), "--regid=" + itoa(int(u.GID)), "--clear-groups",
		"env", "-i", "HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	return append(append(a, env...), argv...)
}

// userRuntimeDir makes an XDG_RUNTIME_DIR for u (0700, the user's).
func userRuntimeDir(t *testing.T, u *harness.TestUser, home string) string {
	t.Helper()
	rt := filepath.Join(home, "run")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	u.Chown(t, rt)
	return rt
}

// userLinux copies linux where u may run it.
func userLinux(t *testing.T, home string) string {
	t.Helper()
	bin := filepath.Join(home, "linux")
	if out, err := exec.Command("cp", harness.Bin(t, "linux"), bin).CombinedOutput(); err != nil {
		t.Fatalf("copy linux: %v: %s", err, out)
	}
	return bin
}

// TestIntegrationLinuxSystemdUserNoCgroup: an ordinary user in a cgroup
// it may not write and without a systemd user manager (a plain su or ssh
// login on a host without logind) gets one line naming what is missing and
// the fix before the guest starts; a systemd guest panics instead of
// freezing, a busybox guest boots as before.
func TestIntegrationLinuxSystemdUserNoCgroup(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	mnt := v2Root(t)
	login := testCgroup(t, mnt, "login") // root's, like a session's
	home := u.Dir(t)
	runtime := userRuntimeDir(t, u, home) // nothing listens there
	bin := userLinux(t, home)
	env := []string{"XDG_RUNTIME_DIR=" + runtime}
	line := fmt.Sprintf("cgroup: linux's cgroup %s is not writable by uid %d and no systemd user manager answered "+
		"(%s/bus: no such file or directory; %s/systemd/private: no such file or directory): "+
		"stop/go signal the guest and a systemd guest cannot boot; "+
		"start linux in a cgroup delegated to uid %d, e.g. systemd-run --user --scope -p Delegate=yes linux ...",
		strings.TrimPrefix(login, mnt), u.UID, runtime, runtime, u.UID)

	t.Run("systemd", func(t *testing.T) {
		img := systemdImage(t, home)
		u.Chown(t, img)
		g := harness.Start(t, nil, asUserIn(login, u, env, append([]string{bin}, systemdArgs(img, filepath.Join(home, "uml"))...)...)...)
		code, err := g.Wait(2 * time.Minute)
		out := g.Output()
		if err != nil {
			t.Fatalf("linux did not exit (systemd frozen?): %v", err)
		}
		i, j := strings.Index(out, line), strings.Index(out, "Run /lib/systemd/systemd as init process")
		if i < 0 {
			t.Errorf("console lacks the line\n%s", line)
		} else if j >= 0 && j < i {
			t.Errorf("the cgroup line comes after the guest started")
		}
		expect(t, out, "Kernel panic - not syncing: /lib/systemd/systemd is systemd (", "which cannot run without a cgroup it may manage")
		if strings.Contains(out, "Freezing execution") {
			t.Errorf("systemd ran and froze")
		}
		if code == 0 {
			t.Errorf("linux exited 0; want a panic's status")
		}
		os.Remove(img)
	})
	t.Run("busybox", func(t *testing.T) {
		dir := filepath.Join(home, "bb")
		os.Mkdir(dir, 0o755)
		img := harness.BusyboxImage(t, dir, harness.Image{Init: "echo BUSYBOX-UP\npoweroff -f"})
		u.Chown(t, img)
		g := harness.Start(t, nil, asUserIn(login, u, env, bin, "ubd0="+img, "init=/init", "uml_dir="+filepath.Join(home, "uml"), "con=null", "con0=fd:0,fd:1")...)
		code, err := g.Wait(bootTimeout)
		if err != nil || code != 0 {
			t.Fatalf("busybox guest: exit %d, %v", code, err)
		}
		expect(t, g.Output(), line, "BUSYBOX-UP")
	})
}

// startUserManager runs `systemd --user` as u in the cgroup cg (which u
// owns, as logind delegates user@UID.service) with XDG_RUNTIME_DIR
// runtime, waits until it is up and returns its pid. This host may not be booted with
// systemd: the manager gets a private mount namespace where
// /run/systemd/system exists (systemd's test for a systemd-booted system;
// never made on the host, where other programs would believe it) and the
// unified hierarchy is at /sys/fs/cgroup.
func startUserManager(t *testing.T, u *harness.TestUser, cg, runtime, mnt string) int {
	t.Helper()
	for _, tool := range []string{"unshare", "nsenter", "setpriv", "systemctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Skip(t, "%s not installed", tool)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		testutil.Skip(t, "systemd not installed (apt-get install systemd)")
	}
	const script = `set -e
echo $$ > "$1"/cgroup.procs
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/systemd/system
[ "$2" = /sys/fs/cgroup ] || mount --bind "$2" /sys/fs/cgroup
exec setpriv --reuid="$3" --regid="$4" --clear-groups env -i HOME="$5" USER="$6" LOGNAME="$6" \
  PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="$7" /lib/systemd/systemd --user`
	g := harness.Start(t, nil, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
		cg, mnt, itoa(int(u.UID)), itoa(int(u.GID)), u.Home, u.Name, runtime)
	t.Cleanup(func() { // before the harness's SIGKILL: the manager stops its units
		syscall.Kill(g.Pid(), syscall.SIGTERM)
		g.Wait(15 * time.Second)
	})
	if err := testutil.WaitFor(30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(runtime, "systemd", "private"))
		return err == nil
	}); err != nil {
		t.Fatalf("systemd --user did not start: %v\n%s", err, g.Output())
	}
	out, err := managerCommand(g.Pid(), u, runtime, "systemctl", "--user", "is-system-running", "--wait")
	t.Logf("systemd --user: %s (%v)", strings.TrimSpace(out), err)
	return g.Pid()
}

// managerCommand runs argv as u in the mount namespace of the user
// manager mgr (where systemctl sees a systemd-booted system), with
// XDG_RUNTIME_DIR, and returns its output.
func managerCommand(mgr int, u *harness.TestUser, runtime string, argv ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", itoa(mgr), "-m", "--", "setpriv", "--reuid=" + itoa(int(u.UID)),
		"--regid=" + itoa(int(u.GID)), "--clear-groups", "env", "-i", "HOME=" + u.Home, "PATH=/usr/bin:/bin",
		"XDG_RUNTIME_DIR=" + runtime}, argv...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s: timed out", strings.Join(argv, " "))
	}
}

// machineCgroupsBelow lists the machine cgroups (umlkit-*) anywhere below dir.
func machineCgroupsBelow(dir string) []string {
	var found []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), cgroup.Prefix) {
			found = append(found, p)
			return filepath.SkipDir
		}
		return nil
	})
	return found
}

// TestIntegrationLinuxSystemdUserScope: an ordinary user in a cgroup it
// may not write (root's, below the user's delegated tree, as a login
// session next to user@UID.service) whose systemd user manager runs: linux
// gets a transient scope with Delegate=yes over D-Bus (session bus, then
// the manager's private socket), the stock systemd guest reaches its
// target and powers off, the manager removes the scope, nothing is left;
// the guest's cgroups stay inside its own subtree.
func TestIntegrationLinuxSystemdUserScope(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	mnt := v2Root(t)
	home := u.Dir(t)
	runtime := userRuntimeDir(t, u, home)
	tree := testCgroup(t, mnt, "user") // the user's, as user@UID.service
	delegate(t, tree, u)
	login := filepath.Join(tree, "login") // root's
	if err := os.Mkdir(login, 0o755); err != nil {
		t.Fatal(err)
	}
	mgr := startUserManager(t, u, tree, runtime, mnt)
	bin := userLinux(t, home)
	env := []string{"XDG_RUNTIME_DIR=" + runtime}
	scopeLine := func(t *testing.T, out, via string) string {
		t.Helper()
		re := regexp.MustCompile(`cgroup: linux's cgroup ` + regexp.QuoteMeta(strings.TrimPrefix(login, mnt)) +
			` is not writable by uid \d+: linux runs in (/\S+\.scope), a scope with Delegate=yes from the systemd user manager at ` +
			regexp.QuoteMeta(via) + "\r\n")
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no scope line naming %s in the console output", via)
		}
		if !strings.HasPrefix(m[1], strings.TrimPrefix(tree, mnt)+"/") {
			t.Errorf("scope %s is not in the user's tree %s", m[1], tree)
		}
		return filepath.Join(mnt, m[1])
	}
	gone := func(t *testing.T, scope string) {
		t.Helper()
		if err := testutil.WaitFor(20*time.Second, func() bool { _, err := os.Stat(scope); return os.IsNotExist(err) }); err != nil {
			t.Errorf("the manager did not remove %s after linux exited", scope)
		}
		if left := machineCgroupsBelow(tree); len(left) > 0 {
			t.Errorf("machine cgroups left: %q", left)
		}
	}

	// The manager starts dbus-daemon on $XDG_RUNTIME_DIR/bus where
	// dbus-user-session is installed; without it linux asks on the
	// manager's private socket.
	firstVia := filepath.Join(runtime, "bus")
	if testutil.WaitFor(10*time.Second, func() bool { _, err := os.Lstat(firstVia); return err == nil }) != nil {
		t.Logf("no session bus at %s (dbus-user-session not installed?): the first boot asks on the private socket", firstVia)
		firstVia = filepath.Join(runtime, "systemd", "private")
	}

	t.Run("systemd on the session bus", func(t *testing.T) {
		img := systemdImage(t, home)
		u.Chown(t, img)
		g := harness.Start(t, nil, asUserIn(login, u, env, append([]string{bin}, systemdArgs(img, filepath.Join(home, "uml"))...)...)...)
		checkSystemd(t, g)
		scope := scopeLine(t, g.Output(), firstVia)
		gone(t, scope)
		os.Remove(img)
	})

	t.Run("private socket, guest confined", func(t *testing.T) {
		if out, err := managerCommand(mgr, u, runtime, "systemctl", "--user", "stop", "dbus.socket", "dbus.service"); err != nil {
			t.Logf("stop the session bus: %v: %s", err, out)
		}
		// The socket file stays (RemoveOnStop=no), nothing answers on it.
		if err := testutil.WaitFor(10*time.Second, func() bool {
			c, err := net.Dial("unix", filepath.Join(runtime, "bus"))
			if err == nil {
				c.Close()
			}
			return err != nil
		}); err != nil {
			t.Fatalf("the session bus still answers")
		}
		probe := redteamProbe(t)
		dir := filepath.Join(home, "bb")
		os.Mkdir(dir, 0o755)
		img := harness.BusyboxImage(t, dir, harness.Image{Init: `chmod 755 /rtprobe
mkdir -p /mnt/cg
if mount -t cgroup2 none /mnt/cg; then
  grep -qx '0::/' /proc/self/cgroup && echo CG-NS-ROOT-IS-OWN
  mkdir /mnt/cg/e2e-sub && echo $$ > /mnt/cg/e2e-sub/cgroup.procs && echo CG-SUB-JOINED
fi
# the guard (G's, so the user's) is in K's cgroup namespace, rooted at the
# machine's cgroup: what guest root sees through it
for p in /proc/[0-9]*; do grep -q umlkit-guard $p/cmdline 2>/dev/null && guard=${p#/proc/}; done
mkdir -p /mnt/cg2; /rtprobe cgns $guard /mnt/cg2
echo READY-FOR-HOST
read x
poweroff -f`, Files: map[string]string{"rtprobe": probe}})
		u.Chown(t, img)
		g := harness.Start(t, nil, asUserIn(login, u, env, bin, "ubd0="+img, "init=/init", "uml_dir="+filepath.Join(home, "uml"), "con=null", "con0=fd:0,fd:1")...)
		if err := g.WaitOutput("READY-FOR-HOST", bootTimeout); err != nil {
			t.Fatal(err)
		}
		scope := scopeLine(t, g.Output(), filepath.Join(runtime, "systemd", "private"))
		expect(t, g.Output(), "CG-NS-ROOT-IS-OWN", "CG-SUB-JOINED")
		// Guest root is the user: through the guard's cgroup namespace it
		// sees its machine's own cgroup (umlkit-UMID: guest/ and nothing
		// else), never the scope, the login's or the user's other ones.
		expect(t, g.Output(), "CG-NS-VIEW: guest END")
		// What the guest made sits in its machine's guest/ cgroup.
		var sub []string
		filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == "e2e-sub" {
				sub = append(sub, p)
			}
			return nil
		})
		if len(sub) != 1 || !regexp.MustCompile("^"+regexp.QuoteMeta(scope)+`/umlkit-[^/]+/guest/e2e-sub$`).MatchString(sub[0]) {
			t.Errorf("the guest's cgroup is at %q; want %s/umlkit-UMID/guest/e2e-sub", sub, scope)
		}
		g.Stdin().Write([]byte("go\n"))
		if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
			t.Errorf("exit %d, %v", code, err)
		}
		gone(t, scope)
	})
}

// killLinux kills P and K of g with SIGKILL at once, as `kill -9` of
// every linux process would, and waits for P.
func killLinux(t *testing.T, g *harness.Guest) {
	t.Helper()
	pids := []int{g.Pid()}
	var seen []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(st), fmt.Sprintf("\nPPid:\t%d\n", g.Pid())) {
			continue
		}
		seen = append(seen, fmt.Sprintf("%d %q", pid, c))
		if strings.HasPrefix(string(c), "linux-kernel\x00") {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("linux %d: K not found among its children %q", g.Pid(), seen)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if _, err := g.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// staleMachine makes what a killed machine of a random umid leaves below
// home (v2: with its guest/ child; v1 memory: with a limit), an hour old.
func staleMachine(t *testing.T, home string, v2 bool) string {
	t.Helper()
	d := filepath.Join(home, fmt.Sprintf("%se2estale%06d", cgroup.Prefix, rand.IntN(1000000)))
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.RmdirTree(d) })
	shape := os.Mkdir(filepath.Join(d, cgroup.GuestDir), 0o755)
	if !v2 { // a memory cgroup of mem=
		shape = os.WriteFile(filepath.Join(d, "memory.limit_in_bytes"), []byte("67108864"), 0)
	}
	if shape != nil {
		t.Fatal(shape)
	}
	ageDir(t, d)
	return d
}

func ageDir(t *testing.T, d string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(d, old, old); err != nil {
		t.Fatal(err)
	}
}

func mustExist(t *testing.T, what string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
}

func mustBeGone(t *testing.T, what string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s: %s is still there", what, p)
		}
	}
}

// TestIntegrationLinuxCgroupsAfterKill9: linux (P and K) killed with
// SIGKILL under a systemd guest with mem= leaves its machine cgroups, the
// guest's own below them and the v1 memory cgroup; the next start of the
// same umid removes them (and sweeps a stale machine cgroup of another
// umid), and so does linux --cleanup, with the umid directory; a live
// machine's cgroups stay through both.
func TestIntegrationLinuxCgroupsAfterKill9(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	mnt := v2Root(t)
	self, err := cgroup.Self()
	if err != nil || self.V2 == "" {
		t.Fatalf("own cgroup: %+v, %v", self, err)
	}
	home2 := filepath.Join(mnt, self.V2)
	home1 := "" // the v1 memory hierarchy, where the host has one
	if m, err := cgroup.V1Mount("memory"); err == nil && self.V1["memory"] != "" {
		home1 = filepath.Join(m, self.V1["memory"])
	}
	machine := func(umid string) []string { // its cgroups: v2, and v1 memory
		cgs := []string{filepath.Join(home2, cgroup.Prefix+umid)}
		if home1 != "" {
			cgs = append(cgs, filepath.Join(home1, cgroup.Prefix+umid))
		}
		return cgs
	}
	stale := func() []string {
		s := []string{staleMachine(t, home2, true)}
		if home1 != "" {
			s = append(s, staleMachine(t, home1, false))
		}
		return s
	}
	bin := harness.Bin(t, "linux")
	suffix := fmt.Sprintf("%06d", rand.IntN(1000000))

	// A live machine with mem=, its cgroups aged: only its life keeps them.
	liveUmid := "e2elive" + suffix
	liveImg := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo LIVE-UP\nexec sleep 100000"})
	live := harness.Start(t, nil, bin, "ubd0="+liveImg, "init=/init", "uml_dir="+t.TempDir(), "umid="+liveUmid, "mem=64M")
	if err := live.WaitOutput("LIVE-UP", bootTimeout); err != nil {
		t.Fatal(err)
	}
	liveCgs := machine(liveUmid)
	mustExist(t, "live machine", liveCgs...)
	for _, d := range liveCgs {
		ageDir(t, d)
	}
	stale1 := stale()
	// Named like a machine cgroup but not shaped like one: someone else's.
	other := filepath.Join(home2, cgroup.Prefix+"e2eother"+suffix, "sub")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	other = filepath.Dir(other)
	t.Cleanup(func() { sys.RmdirTree(other) })
	ageDir(t, other)

	img := systemdImage(t, t.TempDir())
	umlDir := t.TempDir()
	umid := "e2ekill" + suffix
	args := []string{bin, "ubd0=" + img, "init=/lib/systemd/systemd", "uml_dir=" + umlDir, "umid=" + umid, "mem=512M",
		"con=null", "con0=fd:0,fd:1", "--", "systemd.unified_cgroup_hierarchy=1"}
	cgs := machine(umid)
	bootAndKill := func() *harness.Guest {
		t.Helper()
		g := harness.Start(t, nil, args...)
		guest := filepath.Join(cgs[0], cgroup.GuestDir)
		if err := testutil.WaitFor(time.Minute, func() bool { // its own cgroup, not a killed one's
			pids, _ := cgroup.Procs(cgs[0])
			return slices.Contains(pids, g.Pid())
		}); err != nil {
			t.Fatalf("linux is not in %s: %v\n%s", cgs[0], err, g.Output())
		}
		if err := testutil.WaitFor(3*time.Minute, func() bool {
			_, e1 := os.Stat(filepath.Join(guest, "init.scope"))
			_, e2 := os.Stat(filepath.Join(guest, "system.slice"))
			return e1 == nil && e2 == nil
		}); err != nil {
			t.Fatalf("the guest's systemd made no cgroups in %s: %v\n%s", guest, err, g.Output())
		}
		killLinux(t, g)
		return g
	}

	bootAndKill()
	mustExist(t, "left by the killed instance", append(cgs, filepath.Join(cgs[0], cgroup.GuestDir, "init.scope"))...)
	// Markers that only the removal of the killed instance's trees takes.
	markers := []string{filepath.Join(cgs[0], cgroup.GuestDir, "e2e-marker")}
	if home1 != "" {
		markers = append(markers, filepath.Join(cgs[1], "e2e-marker"))
	}
	for _, m := range markers {
		if err := os.Mkdir(m, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// The next start of the same umid.
	g := bootAndKill()
	mustBeGone(t, "the killed instance's cgroups after the next start", markers...)
	mustBeGone(t, "stale machine cgroups beside linux's after a start", stale1...)
	if m, _ := filepath.Glob(filepath.Join(home2, cgroup.Prefix+umid+"-*")); len(m) > 0 {
		t.Errorf("the next start used another name: %q", m)
	}
	mustExist(t, "the live machine's cgroups after a start", liveCgs...)

	// linux --cleanup, once the killed machine is a sweep's to take.
	testutil.WaitFor(10*time.Second, func() bool { p, _ := cgroup.Procs(cgs[0]); return len(p) == 0 })
	if st, err := os.Stat(cgs[0]); err == nil {
		time.Sleep(time.Until(st.ModTime().Add(cgroup.MinAge + time.Second)))
	}
	stale2 := stale()
	cmd := exec.Command(bin, "--cleanup", "uml_dir="+umlDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("linux --cleanup: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	for _, p := range append(append([]string{}, cgs...), stale2...) {
		if !regexp.MustCompile("(?m)^removed cgroup " + regexp.QuoteMeta(p) + "( \\(killed the processes its guest left\\))?$").MatchString(stdout.String()) {
			t.Errorf("linux --cleanup does not say it removed %s", p)
		}
	}
	expect(t, stdout.String(), fmt.Sprintf("removed umid directory %s/%s (pid %d is gone)", umlDir, umid, g.Pid()))
	mustBeGone(t, "after linux --cleanup", append(append(cgs, stale2...), filepath.Join(umlDir, umid))...)
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		for _, p := range append(append(cgs, liveCgs...), stale2...) {
			if strings.Contains(l, p+":") {
				t.Errorf("linux --cleanup: %s", l)
			}
		}
	}
	if ee, ok := err.(*exec.ExitError); ok && stderr.Len() == 0 {
		t.Errorf("linux --cleanup exited %d without saying what it left", ee.ExitCode())
	}
	mustExist(t, "the live machine's cgroups after linux --cleanup", liveCgs...)
	mustExist(t, "a cgroup not shaped like a machine's after linux --cleanup", other)
	if _, err := live.Wait(0); err == nil {
		t.Errorf("the live machine ended during the sweeps")
	}

	// The live machine, ended normally, leaves nothing.
	syscall.Kill(live.Pid(), syscall.SIGTERM)
	if _, err := live.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustBeGone(t, "after the live machine ended", liveCgs...)
}

// TestIntegrationLinuxCgroupsUserGuestLeftovers: run by a user from a
// delegated cgroup, guest root kills the guard (it may: the guard is G's)
// and its init changes uid (which clears the parent-death signal that
// otherwise ends it with K), then linux (P and K) is killed with SIGKILL:
// the guest lives on in the machine's cgroup. linux --cleanup, run by the user, kills what is left
// and removes the cgroups.
func TestIntegrationLinuxCgroupsUserGuestLeftovers(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	mnt := v2Root(t)
	cg := testCgroup(t, mnt, "deleg")
	delegate(t, cg, u)
	home := u.Dir(t)
	bin := userLinux(t, home)
	marker := fmt.Sprintf("3%06d", rand.IntN(1000000))
	dir := filepath.Join(home, "bb")
	os.Mkdir(dir, 0o755)
	img := harness.BusyboxImage(t, dir, harness.Image{Init: `for p in /proc/[0-9]*; do grep -q umlkit-guard $p/cmdline 2>/dev/null && kill -9 ${p#/proc/} && echo GUARD-KILLED; done
trap '' HUP; setsid sh -c 'trap "" HUP; exec sleep ` + marker + `' </dev/null >/dev/null 2>&1 &
echo 'nobody:x:65534:65534::/:/bin/sh' >> /etc/passwd
# init changes its uid: that clears the parent-death signal K gave it
exec su -s /bin/sh nobody -c 'echo READY; exec sleep ` + marker + `'`})
	u.Chown(t, img)
	umlDir := filepath.Join(home, "uml")
	umid := "e2eleft" + marker
	g := harness.Start(t, nil, asUserIn(cg, u, nil, bin, "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid="+umid, "con=null", "con0=fd:0,fd:1")...)
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	expect(t, g.Output(), "GUARD-KILLED")
	m := filepath.Join(cg, cgroup.Prefix+umid)
	killLinux(t, g)
	time.Sleep(time.Second)
	if n := len(guestProcs("sleep\x00" + marker)); n != 2 {
		t.Fatalf("%d guest processes outlived linux; want the 2 sleeps (the test's premise)", n)
	}
	if p, err := cgroup.Populated(m); err != nil || !p {
		t.Fatalf("%s: populated %v, %v; want the guest in it", m, p, err)
	}
	if st, err := os.Stat(m); err == nil {
		time.Sleep(time.Until(st.ModTime().Add(cgroup.MinAge + time.Second)))
	}
	cmd := exec.Command(asUserIn(cg, u, nil, bin, "--cleanup", "uml_dir="+umlDir)[0], asUserIn(cg, u, nil, bin, "--cleanup", "uml_dir="+umlDir)[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("linux --cleanup: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	expect(t, stdout.String(), "removed cgroup "+m+" (killed the processes its guest left)\n",
		fmt.Sprintf("removed umid directory %s/%s (pid %d is gone)", umlDir, umid, g.Pid()))
	mustBeGone(t, "after linux --cleanup", m)
	if left := guestProcs("sleep\x00" + marker); len(left) > 0 {
		t.Errorf("guest processes left: %v", left)
	}
}
