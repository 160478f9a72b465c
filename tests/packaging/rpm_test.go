package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
)

// rpmQuery runs rpm -qp with args on pkg (Debian's rpm warns on stderr that
// it is not the system's package manager; only stdout is returned).
func rpmQuery(t *testing.T, pkg string, args ...string) string {
	t.Helper()
	cmd := exec.Command("rpm", append(append([]string{"-qp"}, args...), pkg)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm -qp %s %s: %v", strings.Join(args, " "), filepath.Base(pkg), err)
	}
	return string(out)
}

type rpmFile struct{ mode, owner, group, link string }

// rpmFiles parses rpm --dump: path size mtime digest mode owner group
// isconfig isdoc rdev symlink.
func rpmFiles(t *testing.T, pkg string) map[string]rpmFile {
	t.Helper()
	files := map[string]rpmFile{}
	for _, line := range strings.Split(strings.TrimSpace(rpmQuery(t, pkg, "--dump")), "\n") {
		f := strings.Fields(line)
		if len(f) != 11 {
			t.Fatalf("rpm --dump line %q", line)
		}
		files[f[0]] = rpmFile{mode: f[4], owner: f[5], group: f[6], link: f[10]}
	}
	return files
}

// TestIntegrationRPM checks the .rpm files with the rpm tools: metadata, file
// list with owners and modes, config flags and scriptlets; then installs them
// with rpm --root into a clean Debian chroot (which has /bin/sh, useradd and
// systemctl, so the scriptlets really run), verifies and erases them.
func TestIntegrationRPM(t *testing.T) {
	lookTool(t, "rpm", "rpm")
	pk := Build(t)

	t.Run("metadata", func(t *testing.T) {
		if got := rpmQuery(t, pk.UtilitiesRPM, "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}"); got != "umlkit-utilities "+pk.Version+" 1 x86_64" {
			t.Errorf("NAME VERSION RELEASE ARCH = %q", got)
		}
		provides := rpmQuery(t, pk.UtilitiesRPM, "--provides")
		conflicts := rpmQuery(t, pk.UtilitiesRPM, "--conflicts")
		for _, l := range []string{provides, conflicts} {
			if !strings.Contains(l, "uml-utilities\n") {
				t.Errorf("rpm lacks uml-utilities in provides/conflicts: %q / %q", provides, conflicts)
			}
		}
	})
	t.Run("file list", func(t *testing.T) {
		files := rpmFiles(t, pk.UtilitiesRPM)
		for path, linuxFile := range rpmFiles(t, pk.LinuxRPM) {
			files[path] = linuxFile
		}
		want := map[string]rpmFile{
			"/usr/bin/uml_net":                              {"0104754", "root", "uml-net", "X"},
			"/usr/bin/uml_switch":                           {"0100755", "root", "root", "X"},
			"/usr/lib/uml/port-helper":                      {"0100755", "root", "root", "X"},
			"/usr/lib64/uml/port-helper":                    {"0120000", "root", "root", "/usr/lib/uml/port-helper"},
			"/etc/default/uml-utilities":                    {"0100644", "root", "root", "X"},
			"/usr/lib/systemd/system/uml_switch.service":    {"0100644", "root", "root", "X"},
			"/usr/lib/systemd/system/uml_switch.socket":     {"0100644", "root", "root", "X"},
			"/usr/lib/systemd/system/uml-utilities.service": {"0120000", "root", "root", "uml_switch.service"},
			"/usr/bin/linux.umlkit":                         {"0100755", "root", "root", "X"},
		}
		for path, w := range want {
			if got, ok := files[path]; !ok || got != w {
				t.Errorf("%s = %+v (present %v); want %+v", path, got, ok, w)
			}
		}
		for path := range programs {
			if _, ok := files[path]; !ok && path != "/usr/bin/linux" {
				t.Errorf("%s missing from the rpms", path)
			}
		}
		for _, p := range manPages {
			if _, ok := files["/usr/share/man/"+p]; !ok {
				t.Errorf("man page %s missing from the rpms", p)
			}
		}
		for _, name := range completed {
			for _, f := range completionFiles(name) {
				if _, ok := files[f]; !ok {
					t.Errorf("completion %s missing from the rpms", f)
				}
			}
		}
		// Debian-only files stay out of the rpm.
		for path := range files {
			if strings.HasPrefix(path, "/etc/init.d/") || strings.HasPrefix(path, "/etc/network/") || strings.HasPrefix(path, "/lib/") {
				t.Errorf("rpm carries %s", path)
			}
		}
		cfg := rpmQuery(t, pk.UtilitiesRPM, "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]")
		if !strings.Contains(cfg, "/etc/default/uml-utilities cn\n") {
			t.Errorf("/etc/default/uml-utilities is not %%config(noreplace):\n%s", cfg)
		}
	})
	t.Run("scriptlets", func(t *testing.T) {
		for _, tag := range []string{"PREIN", "POSTIN", "PREUN", "POSTUN"} {
			for _, pkg := range []string{pk.UtilitiesRPM, pk.LinuxRPM} {
				body := rpmQuery(t, pkg, "--qf", "%{"+tag+"}")
				if body == "(none)" {
					continue
				}
				cmd := exec.Command("sh", "-n")
				cmd.Stdin = strings.NewReader(body)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s %s: sh -n: %v\n%s", filepath.Base(pkg), tag, err, out)
				}
			}
		}
		pre := rpmQuery(t, pk.UtilitiesRPM, "--qf", "%{PREIN}")
		if !strings.Contains(pre, "groupadd -r uml-net") {
			t.Errorf("%%pre does not create the uml-net group:\n%s", pre)
		}
		if !strings.Contains(pre, "groupadd -r uml-switch") {
			t.Errorf("%%pre does not create the uml-switch group:\n%s", pre)
		}
		if post := rpmQuery(t, pk.LinuxRPM, "--qf", "%{POSTIN}"); !strings.Contains(post, "update-alternatives") {
			t.Errorf("umlkit-linux %%post does not register the linux alternative:\n%s", post)
		}
	})
	t.Run("dependencies", func(t *testing.T) {
		// Against an empty database the only unmet needs are the account
		// tools (no self-conflict through provides/conflicts uml-utilities).
		db := t.TempDir()
		if out, err := exec.Command("rpm", "--root", db, "--initdb").CombinedOutput(); err != nil {
			t.Fatalf("rpm --initdb: %v\n%s", err, out)
		}
		out, _ := exec.Command("rpm", "--root", db, "-i", "--test", pk.UtilitiesRPM, pk.LinuxRPM).CombinedOutput()
		var unmet []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "\t") {
				unmet = append(unmet, strings.Fields(line)[0])
			}
		}
		if strings.Join(unmet, " ") != "/usr/sbin/useradd /usr/sbin/groupadd" || strings.Contains(string(out), "conflicts") {
			t.Errorf("rpm -i --test: unmet %v\n%s", unmet, out)
		}
	})
	t.Run("install in chroot", func(t *testing.T) {
		testutil.RequireRoot(t)
		root := Chroot(t)
		rpm := func(args ...string) string {
			t.Helper()
			out, err := exec.Command("rpm", append([]string{"--root", root}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("rpm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		rpm("--initdb")
		// dpkg's files are unknown to rpm's database: dependencies were
		// checked above.
		rpm("-i", "--nodeps", pk.UtilitiesRPM, pk.LinuxRPM)
		st, err := os.Lstat(filepath.Join(root, "usr/bin/uml_net"))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if gid := lookupID(t, root, "group", "uml-net"); sys.Mode&0o7777 != 0o4754 || sys.Uid != 0 || int(sys.Gid) != gid {
			t.Errorf("uml_net: mode %04o uid %d gid %d; want 4754 root:uml-net (gid %d)", sys.Mode&0o7777, sys.Uid, sys.Gid, gid)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/sockets.target.wants/uml_switch.socket")); err != nil {
			t.Errorf("%%post did not enable uml_switch.socket: %v", err)
		}
		if out, _ := inChroot(root, "readlink", "-f", "/usr/bin/linux"); strings.TrimSpace(out) != "/usr/bin/linux.umlkit" {
			t.Errorf("/usr/bin/linux -> %q; want /usr/bin/linux.umlkit", out)
		}
		if out, err := inChroot(root, "/usr/lib64/uml/port-helper", "--version"); err != nil || !strings.Contains(out, pk.Version) {
			t.Errorf("/usr/lib64/uml/port-helper --version = %q, %v", out, err)
		}
		if out := rpm("-V", "--nodeps", "umlkit-utilities", "umlkit-linux"); strings.Contains(out, "/usr/") || strings.Contains(out, "/etc/") {
			t.Errorf("rpm -V reports changed files:\n%s", out)
		}
		rpm("-e", "umlkit-utilities", "umlkit-linux")
		for _, p := range []string{"usr/bin/uml_net", "usr/bin/linux", "etc/systemd/system/sockets.target.wants/uml_switch.socket"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				t.Errorf("/%s left after rpm -e", p)
			}
		}
	})
}
