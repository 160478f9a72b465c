package packaging

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupBuild()
	os.Exit(code)
}

// What the packages must install.
var (
	// program path -> name it answers --version with
	programs = map[string]string{
		"/usr/bin/tunctl":          "tunctl",
		"/usr/bin/uml_mconsole":    "uml_mconsole",
		"/usr/bin/uml_mkcow":       "uml_mkcow",
		"/usr/bin/uml_moo":         "uml_moo",
		"/usr/bin/uml_net":         "uml_net",
		"/usr/bin/uml_switch":      "uml_switch",
		"/usr/bin/uml_watchdog":    "uml_watchdog",
		"/usr/lib/uml/port-helper": "port-helper",
		"/usr/bin/linux.umlkit":    "linux",
		"/usr/bin/linux":           "linux",
		"/usr/bin/uml_mkrootfs":    "uml_mkrootfs",
	}
	manPages = []string{
		"man1/uml_mconsole.1.gz", "man1/uml_mkcow.1.gz", "man1/uml_moo.1.gz", "man1/uml_switch.1.gz",
		"man1/uml_watchdog.1.gz", "man1/uml_mkrootfs.1.gz", "man1/linux.umlkit.1.gz",
		"man8/tunctl.8.gz", "man8/uml_net.8.gz", "man8/port-helper.8.gz",
	}
	completed = []string{"tunctl", "uml_mconsole", "uml_mkcow", "uml_moo", "uml_net", "uml_switch",
		"uml_watchdog", "port-helper", "linux", "uml_mkrootfs"}
	units = []string{"uml_switch.service", "uml_switch.socket"}
)

func completionFiles(name string) []string {
	return []string{
		"/usr/share/bash-completion/completions/" + name,
		"/usr/share/zsh/vendor-completions/_" + name,
		"/usr/share/fish/vendor_completions.d/" + name + ".fish",
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func lookTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		testutil.Skip(t, "%s not installed (apt-get install %s)", tool, pkg)
	}
	return p
}

// TestPackagingSources checks the hand-written packaging files without
// building anything: shell syntax of every maintainer script, hook and
// completion, man page markup, and that the defaults file and init script
// carry the variables Debian's uml-utilities honours.
func TestPackagingSources(t *testing.T) {
	root := repoRoot(t)
	glob := func(pattern string) []string {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil || len(m) == 0 {
			t.Fatalf("no files match %s", pattern)
		}
		return m
	}
	syntax := func(t *testing.T, files []string, argv ...string) {
		for _, f := range files {
			if out, err := exec.Command(argv[0], append(argv[1:], f)...).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", strings.Join(argv, " "), f, err, out)
			}
		}
	}
	t.Run("sh", func(t *testing.T) {
		files := append(glob("packaging/scripts/*"), glob("packaging/init.d/*")...)
		files = append(files, glob("packaging/network/*/*")...)
		syntax(t, files, "sh", "-n")
		// Debian runs these with /bin/sh = dash; check with dash too when present.
		if _, err := exec.LookPath("dash"); err == nil {
			syntax(t, files, "dash", "-n")
		}
	})
	t.Run("bash", func(t *testing.T) {
		syntax(t, append(glob("packaging/completions/bash/*"), filepath.Join(root, "packaging/build.sh")), "bash", "-n")
	})
	t.Run("zsh", func(t *testing.T) {
		syntax(t, glob("packaging/completions/zsh/*"), lookTool(t, "zsh", "zsh"), "-n")
	})
	t.Run("fish", func(t *testing.T) {
		syntax(t, glob("packaging/completions/fish/*"), lookTool(t, "fish", "fish"), "--no-execute")
	})
	t.Run("man", func(t *testing.T) {
		man := lookTool(t, "man", "man-db")
		for _, page := range glob("docs/man/*.[18]") {
			cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", page)
			cmd.Env = append(os.Environ(), "MANWIDTH=80")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Errorf("man -l %s: %v\n%s", page, err, stderr.String())
			}
			name := strings.TrimSuffix(filepath.Base(page), filepath.Ext(page))
			if !strings.Contains(string(out), "NAME") || !strings.Contains(string(out), name) {
				t.Errorf("%s renders without a NAME section naming %s", page, name)
			}
		}
	})
	t.Run("debian variables", func(t *testing.T) {
		def, err := os.ReadFile(filepath.Join(root, "packaging/default/uml-utilities"))
		if err != nil {
			t.Fatal(err)
		}
		initd, err := os.ReadFile(filepath.Join(root, "packaging/init.d/uml-utilities"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"UML_SWITCH_START", "UML_SWITCH_OPTIONS", "UML_SWITCH_USER", "UML_SWITCH_CTL"} {
			if !strings.Contains(string(def), "#"+v+"=") {
				t.Errorf("/etc/default/uml-utilities does not document %s", v)
			}
			if !strings.Contains(string(initd), "$"+v) && !strings.Contains(string(initd), "${"+v) {
				t.Errorf("/etc/init.d/uml-utilities does not use %s", v)
			}
		}
		if !strings.Contains(string(initd), `UML_SWITCH_CTL="$RUNDIR/uml_switch.ctl"`) || !strings.Contains(string(initd), "RUNDIR=/var/run/uml-utilities") {
			t.Errorf("init script default control socket is not /var/run/uml-utilities/uml_switch.ctl")
		}
	})
}

// installDebs copies the packages into root and installs them with dpkg.
func installDebs(t *testing.T, root string, debs ...string) string {
	t.Helper()
	var args []string
	for _, d := range debs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join("/tmp", filepath.Base(d))
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, dst)
	}
	out, err := inChroot(root, append([]string{"dpkg", "--force-confdef", "--force-confold", "-i"}, args...)...)
	if err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// lookupID returns field 3 (uid or gid) of name in root's /etc/passwd or /etc/group.
func lookupID(t *testing.T, root, file, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("/etc/%s: %q", file, line)
			}
			return id
		}
	}
	t.Fatalf("%s not in %s's /etc/%s", name, root, file)
	return -1
}

func gunzipHead(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return ""
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Errorf("%s: %v", path, err)
	}
	return string(b)
}

// TestIntegrationDebChroot installs both .debs into a clean Debian 12 chroot
// and checks what a user of Debian's uml-utilities relies on, then purges
// them.
func TestIntegrationDebChroot(t *testing.T) {
	pk := Build(t)
	root := Chroot(t)
	installDebs(t, root, pk.UtilitiesDeb, pk.LinuxDeb)

	t.Run("programs run", func(t *testing.T) {
		for path, name := range programs {
			out, err := inChroot(root, path, "--version")
			if err != nil || strings.TrimSpace(out) == "" {
				t.Errorf("%s --version = %q, %v; want a version line and status 0", path, out, err)
				continue
			}
			// linux may answer like the real kernel (its release); the
			// utilities answer "<name> (umlkit) <version>".
			if name != "linux" && (!strings.Contains(out, name) || !strings.Contains(out, pk.Version)) {
				t.Errorf("%s --version = %q; want %s and version %s", path, out, name, pk.Version)
			}
		}
	})
	t.Run("linux alternative", func(t *testing.T) {
		for link, want := range map[string]string{
			"/usr/bin/linux":                 "/usr/bin/linux.umlkit",
			"/usr/share/man/man1/linux.1.gz": "/usr/share/man/man1/linux.umlkit.1.gz",
		} {
			out, err := inChroot(root, "readlink", "-f", link)
			if got := strings.TrimSpace(out); err != nil || got != want {
				t.Errorf("readlink -f %s = %q, %v; want %s", link, got, err, want)
			}
		}
	})
	t.Run("man pages", func(t *testing.T) {
		for _, p := range manPages {
			page := gunzipHead(t, filepath.Join(root, "usr/share/man", p))
			if !regexp.MustCompile(`(?m)^\.TH "?[A-Za-z_.-]+"? "?[18]"?`).MatchString(page) {
				t.Errorf("%s has no .TH header", p)
			}
		}
	})
	t.Run("completions", func(t *testing.T) {
		for _, name := range completed {
			for _, f := range completionFiles(name) {
				if st, err := os.Stat(filepath.Join(root, f)); err != nil || st.Size() == 0 {
					t.Errorf("completion %s: %v", f, err)
				}
			}
		}
	})
	t.Run("uml_net owner and mode", func(t *testing.T) {
		st, err := os.Lstat(filepath.Join(root, "usr/bin/uml_net"))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		gid := lookupID(t, root, "group", "uml-net")
		if sys.Mode&0o7777 != 0o4754 || sys.Uid != 0 || int(sys.Gid) != gid {
			t.Errorf("uml_net: mode %04o uid %d gid %d; want 4754 root:uml-net (gid %d)", sys.Mode&0o7777, sys.Uid, sys.Gid, gid)
		}
		out, err := inChroot(root, "dpkg-statoverride", "--list", "/usr/bin/uml_net")
		if err != nil || strings.TrimSpace(out) != "root uml-net 4754 /usr/bin/uml_net" {
			t.Errorf("dpkg-statoverride --list = %q, %v", out, err)
		}
		out, err = inChroot(root, "getent", "passwd", "uml-net")
		if err != nil || !strings.Contains(out, ":/nonexistent:") {
			t.Errorf("uml-net account = %q, %v; want a system user with home /nonexistent", out, err)
		}
	})
	t.Run("conffiles", func(t *testing.T) {
		out, err := inChroot(root, "dpkg-query", "-W", "-f=${Conffiles}", "umlkit-utilities")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"/etc/default/uml-utilities", "/etc/init.d/uml-utilities",
			"/etc/network/if-pre-up.d/uml-utilities", "/etc/network/if-up.d/uml-utilities"} {
			if !strings.Contains(out, " "+f+" ") {
				t.Errorf("%s is not a conffile:\n%s", f, out)
			}
		}
		out, _ = inChroot(root, "dpkg-query", "-W", "-f=${Provides}|${Conflicts}|${Replaces}", "umlkit-utilities")
		if out != "uml-utilities|uml-utilities|uml-utilities" {
			t.Errorf("Provides|Conflicts|Replaces = %q; want uml-utilities for each", out)
		}
	})
	t.Run("boot-time switch enabled", func(t *testing.T) {
		for _, l := range []string{"etc/systemd/system/sockets.target.wants/uml_switch.socket", "etc/rc2.d/S01uml-utilities"} {
			if _, err := os.Lstat(filepath.Join(root, l)); err != nil {
				t.Errorf("postinst did not enable the switch: %v", err)
			}
		}
	})
	t.Run("systemd-analyze verify", func(t *testing.T) {
		var paths []string
		for _, u := range units {
			paths = append(paths, "/lib/systemd/system/"+u)
		}
		out, err := inChroot(root, append([]string{"systemd-analyze", "verify", "--man=no"}, paths...)...)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// The same check must reject a unit whose program is missing, or it
		// proves nothing here.
		svc, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/uml_switch.service"))
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(svc), "/usr/bin/uml_switch", "/usr/bin/umlkit-missing", 1)
		if err := os.WriteFile(filepath.Join(root, "tmp/bad.service"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := inChroot(root, "systemd-analyze", "verify", "--man=no", "/tmp/bad.service"); err == nil {
			t.Errorf("systemd-analyze verify accepted a unit with a missing program:\n%s", out)
		}
	})
	t.Run("ifupdown tunctl_user", func(t *testing.T) { testTunctlHook(t, root) })
	t.Run("ifupdown proxy arp", func(t *testing.T) { testProxyARPHook(t, root) })
	t.Run("sysv init script", func(t *testing.T) { testInitScript(t, root) })
	t.Run("reinstall", func(t *testing.T) {
		// Same version again: the upgrade path of every maintainer script.
		installDebs(t, root, pk.UtilitiesDeb, pk.LinuxDeb)
		out, _ := inChroot(root, "dpkg-statoverride", "--list", "/usr/bin/uml_net")
		if strings.TrimSpace(out) != "root uml-net 4754 /usr/bin/uml_net" {
			t.Errorf("after reinstall dpkg-statoverride --list = %q", out)
		}
	})
	t.Run("purge", func(t *testing.T) {
		if out, err := inChroot(root, "dpkg", "--purge", "umlkit-linux", "umlkit-utilities"); err != nil {
			t.Fatalf("dpkg --purge: %v\n%s", err, out)
		}
		if out, _ := inChroot(root, "dpkg-statoverride", "--list", "/usr/bin/uml_net"); strings.TrimSpace(out) != "" {
			t.Errorf("statoverride left after purge: %q", out)
		}
		for _, p := range []string{"usr/bin/uml_net", "usr/bin/linux", "etc/default/uml-utilities",
			"etc/systemd/system/sockets.target.wants/uml_switch.socket", "etc/rc2.d/S01uml-utilities"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				t.Errorf("/%s left after purge", p)
			}
		}
	})
}

// testTunctlHook runs the installed if-pre-up.d hook the way ifupdown does,
// inside the chroot and a private network namespace: it must leave a
// persistent tap device owned by the tunctl_user.
func testTunctlHook(t *testing.T, root string) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	if err := os.MkdirAll(filepath.Join(root, "dev/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(root, "dev/net/tun"), unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatalf("mknod /dev/net/tun in chroot: %v", err)
	}
	hook := testutil.InNetNS(ns, "chroot", root, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"IFACE=umltap0", "IF_TUNCTL_USER=uml-net", "MODE=start", "PHASE=pre-up", "/etc/network/if-pre-up.d/uml-utilities")
	if out, err := hook.CombinedOutput(); err != nil {
		t.Fatalf("if-pre-up.d hook: %v\n%s", err, out)
	}
	out, err := testutil.InNetNS(ns, "cat", "/sys/class/net/umltap0/owner", "/sys/class/net/umltap0/tun_flags").Output()
	if err != nil {
		t.Fatalf("tap umltap0 not created: %v", err)
	}
	f := strings.Fields(string(out))
	uid := lookupID(t, root, "passwd", "uml-net")
	if len(f) != 2 || f[0] != strconv.Itoa(uid) {
		t.Errorf("umltap0 owner = %q; want uid %d (uml-net)", out, uid)
	}
	// Without the option the hook does nothing.
	quiet := testutil.InNetNS(ns, "chroot", root, "env", "-i", "IFACE=umltap1", "/etc/network/if-pre-up.d/uml-utilities")
	if out, err := quiet.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("hook without tunctl_user: %v %q", err, out)
	}
	if err := testutil.InNetNS(ns, "ip", "link", "show", "umltap1").Run(); err == nil {
		t.Errorf("hook without tunctl_user created umltap1")
	}
}

// testProxyARPHook runs the installed if-up.d hook (with the host's ip, as
// the minimal chroot has no iproute2) in a private network namespace with a
// "LAN" interface and a guest-side interface (both taps: no dummy module
// needed), and checks proxy ARP, routes and published neighbours.
func testProxyARPHook(t *testing.T, root string) {
	testutil.RequireRoot(t)
	lookTool(t, "ip", "iproute2")
	ns := testutil.NetNS(t)
	for _, argv := range [][]string{
		{"ip", "tuntap", "add", "lan0", "mode", "tap"},
		{"ip", "link", "set", "lan0", "up"},
		{"ip", "addr", "add", "10.77.0.1/24", "dev", "lan0"},
		{"ip", "tuntap", "add", "umltap2", "mode", "tap"},
		{"ip", "link", "set", "umltap2", "up"},
	} {
		if out, err := testutil.InNetNS(ns, argv...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	hook := filepath.Join(root, "etc/network/if-up.d/uml-utilities")
	cmd := testutil.InNetNS(ns, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "IFACE=umltap2",
		"IF_UML_PROXY_ARP=10.77.0.52 10.77.0.53", "IF_UML_PROXY_ETHER=lan0", "sh", hook)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("if-up.d hook: %v\n%s", err, out)
	}
	check := func(want string, argv ...string) {
		t.Helper()
		out, err := testutil.InNetNS(ns, argv...).Output()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%v = %q, %v; want it to contain %q", argv, out, err, want)
		}
	}
	check("1", "cat", "/proc/sys/net/ipv4/conf/umltap2/proxy_arp")
	for _, a := range []string{"10.77.0.52", "10.77.0.53"} {
		check(a+" dev umltap2", "ip", "-4", "route", "show", a)
		check(a+" dev lan0 proxy", "ip", "-4", "neigh", "show", "proxy", a)
	}
}

// TestIntegrationDebReplacesUMLUtilities installs Debian's own uml-utilities
// in a clean chroot, edits its defaults file, then installs ours: dpkg must
// remove the old package in our favour, keep the administrator's file and
// leave uml_net under our statoverride.
func TestIntegrationDebReplacesUMLUtilities(t *testing.T) {
	pk := Build(t)
	real := debianUMLUtilities(t)
	root := Chroot(t)
	b, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp/uml-utilities.deb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Its libraries (libfuse2, libreadline8) are not in minbase; only its
	// maintainer scripts and files matter here.
	if out, err := inChroot(root, "dpkg", "--force-depends", "-i", "/tmp/uml-utilities.deb"); err != nil {
		t.Fatalf("installing Debian's uml-utilities: %v\n%s", err, out)
	}
	def := filepath.Join(root, "etc/default/uml-utilities")
	f, err := os.OpenFile(def, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("UML_SWITCH_OPTIONS=\"-hub\" # administrator's setting\n")
	f.Close()

	out := installDebs(t, root, pk.UtilitiesDeb)
	if !strings.Contains(out, "will remove uml-utilities in favour of umlkit-utilities") {
		t.Errorf("dpkg did not replace uml-utilities:\n%s", out)
	}
	status, _ := inChroot(root, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "uml-utilities", "umlkit-utilities")
	// Status letters: uml-utilities keeps only its config files (c), ours
	// is installed (i).
	if len(status) != 6 || status[1] != 'c' || status[3:5] != "ii" {
		t.Errorf("package states = %q; want uml-utilities config-files only (?c) and ours installed (ii)", status)
	}
	if b, _ := os.ReadFile(def); !strings.Contains(string(b), "administrator's setting") {
		t.Errorf("/etc/default/uml-utilities lost the administrator's setting:\n%s", b)
	}
	if owner, _ := inChroot(root, "dpkg", "-S", "/etc/default/uml-utilities"); !strings.HasPrefix(owner, "umlkit-utilities:") {
		t.Errorf("dpkg -S /etc/default/uml-utilities = %q", owner)
	}
	if out, _ := inChroot(root, "dpkg-statoverride", "--list", "/usr/bin/uml_net"); strings.TrimSpace(out) != "root uml-net 4754 /usr/bin/uml_net" {
		t.Errorf("dpkg-statoverride --list = %q", out)
	}
	if out, err := inChroot(root, "/usr/bin/uml_switch", "--version"); err != nil || !strings.Contains(out, "(umlkit)") {
		t.Errorf("/usr/bin/uml_switch --version = %q, %v; want umlkit's", out, err)
	}
}

// debianUMLUtilities returns Debian's uml-utilities .deb: from apt's cache, or
// downloaded with apt-get download.
func debianUMLUtilities(t *testing.T) string {
	t.Helper()
	if m, _ := filepath.Glob("/var/cache/apt/archives/uml-utilities_*.deb"); len(m) > 0 {
		return m[len(m)-1]
	}
	dir := t.TempDir()
	cmd := exec.Command("apt-get", "download", "uml-utilities")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		testutil.Skip(t, "apt-get download uml-utilities: %v\n%s", err, out)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "uml-utilities_*.deb"))
	if len(m) != 1 {
		t.Fatalf("apt-get download made %v", m)
	}
	return m[0]
}

// TestBashCompletions drives the hand-written bash completions the way bash
// does (COMP_WORDS/COMP_CWORD, then the registered function) and checks the
// candidates offered.
func TestBashCompletions(t *testing.T) {
	root := repoRoot(t)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".uml", "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file  string
		words []string // the command line; the last word is being completed
		want  string
	}{
		{"linux", []string{"linux", "ub"}, "ubd0="},
		{"linux", []string{"linux", "eth0=da"}, "eth0=daemon"},
		{"linux", []string{"linux", "con0=p"}, "con0=pts"},
		{"uml_switch", []string{"uml_switch", "-h"}, "-hub"},
		{"uml_switch", []string{"uml_switch", "-unix", "/tmp/x", "-com"}, "-compat-v0"},
		{"tunctl", []string{"tunctl", "-u", "roo"}, "root"},
		{"uml_moo", []string{"uml_moo", "--in"}, "--info"},
		{"uml_mkcow", []string{"uml_mkcow", "-"}, "-f"},
		{"uml_mconsole", []string{"uml_mconsole", "de"}, "demo"},
		{"uml_mconsole", []string{"uml_mconsole", "demo", "ha"}, "halt"},
		{"uml_mconsole", []string{"uml_mconsole", "--timeout", "5s", "demo", "sys"}, "sysrq"},
		{"uml_watchdog", []string{"uml_watchdog", "-m"}, "-mconsole"},
		{"uml_net", []string{"uml_net", "4", "tu"}, "tuntap"},
		{"port-helper", []string{"port-helper", "-u"}, "-uml-socket"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			script := `source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
fn=$(complete -p "$1" | sed -E 's/.* -F ([^ ]+) .*/\1/')
"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
			cmd := exec.Command("bash", append([]string{"-c", script, "bash", filepath.Join(root, "packaging/completions/bash", tt.file)}, tt.words...)...)
			cmd.Env = append(os.Environ(), "HOME="+home)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if !hasWord(string(out), tt.want) {
				t.Errorf("completions = %q; want %q among them", out, tt.want)
			}
		})
	}
}

// testInitScript runs /etc/init.d/uml-utilities start, status and stop in the
// chroot, inside fresh pid, mount and network namespaces (so the switch and
// its abstract data socket cannot outlive the test or touch the host), and
// checks the control socket (mode 0660, uml-net:uml-switch), the account the
// switch runs as, and the clean-up.
func testInitScript(t *testing.T, root string) {
	lookTool(t, "unshare", "util-linux")
	script := `R=$1
mount -t proc proc "$R/proc" || exit 1
run() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /etc/init.d/uml-utilities "$1" >/dev/null 2>&1; echo "$1=$?"; }
run start
stat -c 'socket=%A %u %g' "$R/run/uml-utilities/uml_switch.ctl"
pid=$(cat "$R/run/uml-utilities/uml_switch.pid")
awk '/^Uid:/ {print "uid=" $2}' "$R/proc/$pid/status"
run status
run stop
[ -e "$R/run/uml-utilities/uml_switch.ctl" ] && echo left=socket
run status
umount "$R/proc"`
	out, err := exec.Command("unshare", "--fork", "--pid", "--mount", "--net", "sh", "-c", script, "sh", root).CombinedOutput()
	if err != nil {
		t.Fatalf("init script run: %v\n%s", err, out)
	}
	uid := lookupID(t, root, "passwd", "uml-net")
	gid := lookupID(t, root, "group", "uml-switch")
	want := fmt.Sprintf("start=0\nsocket=srw-rw---- %d %d\nuid=%d\nstatus=0\nstop=0\nstatus=3\n", uid, gid, uid)
	if string(out) != want {
		t.Errorf("init script start/status/stop:\n%s\nwant:\n%s", out, want)
	}
}
