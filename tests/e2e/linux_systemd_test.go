package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
	"github.com/umlkit/umlkit/tests/packaging"
)

// systemdProbe runs once the system is up (umlkit-test.service): it prints
// what systemd detected and which units failed, then powers off.
const systemdProbe = `#!/bin/sh
exec >/dev/console 2>&1
state=$(systemctl is-system-running --wait)
# One write once the boot is over, so no status line of systemd's splits it.
printf 'DETECT-VIRT=[%s]\nCONTAINER-FILE=[%s]\nSTATE=[%s]\n%s\nPOWEROFF-NOW\n' \
  "$(systemd-detect-virt)" "$(cat /run/systemd/container 2>&1)" "$state" \
  "$(systemctl --failed --no-legend --plain | sed 's/^/FAILED-UNIT: /')"
systemctl poweroff --no-block
`

const systemdProbeUnit = `[Unit]
Description=umlkit e2e probe
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/umlkit-probe

[Install]
WantedBy=multi-user.target
`

// systemdImage makes an ext4 image in dir from the cached Debian 12
// minbase+systemd chroot of tests/packaging (one debootstrap on a cold
// cache, shared with the packaging tests), with the probe unit enabled.
func systemdImage(t *testing.T, dir string) string {
	t.Helper()
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	root := packaging.Chroot(t)
	os.Remove(filepath.Join(root, "usr/sbin/policy-rc.d")) // the chroot's, not the machine's
	files := map[string]string{
		"usr/local/sbin/umlkit-probe":                                         systemdProbe,
		"etc/systemd/system/umlkit-test.service":                              systemdProbeUnit,
		"etc/systemd/system/multi-user.target.wants/umlkit-test.service@link": "/etc/systemd/system/umlkit-test.service",
	}
	for name, body := range files {
		p := filepath.Join(root, strings.TrimSuffix(name, "@link"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if strings.HasSuffix(name, "@link") {
			err = os.Symlink(body, p)
		} else {
			err = os.WriteFile(p, []byte(body), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "systemd.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "1G").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs -d: %v\n%s", err, out)
	}
	return img
}

// systemdArgs boots the image with systemd as init. The word after "--"
// goes to systemd's argv, where it reads its options in a container: on a
// host whose v1 controllers are in use systemd would otherwise pick the
// hybrid hierarchy, whose named v1 tree the guest cannot write.
func systemdArgs(img, umlDir string) []string {
	return []string{"ubd0=" + img, "init=/lib/systemd/systemd", "uml_dir=" + umlDir,
		"con=null", "con0=fd:0,fd:1", "--", "systemd.unified_cgroup_hierarchy=1"}
}

// checkSystemd waits for the probe, checks what systemd detected, and
// measures the time from `systemctl poweroff` to the exit of linux.
func checkSystemd(t *testing.T, g *harness.Guest) {
	t.Helper()
	if err := g.WaitOutput("POWEROFF-NOW", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, err := g.Wait(60 * time.Second)
	took := time.Since(start)
	t.Logf("systemctl poweroff until linux exited: %v", took.Round(10*time.Millisecond))
	out := g.Output()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "STATE=") || strings.HasPrefix(l, "FAILED-UNIT:") {
			t.Log(strings.TrimSpace(l))
		}
	}
	for _, want := range []string{"DETECT-VIRT=[container-other]", "CONTAINER-FILE=[umlkit]", "Detected virtualization container-other."} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if err != nil || code != 0 {
		t.Fatalf("exit after systemctl poweroff = %d, %v", code, err)
	}
	if took > 30*time.Second {
		t.Errorf("linux exited %v after systemctl poweroff; want < 30s (systemd-shutdown waiting for a process?)", took)
	}
}

// TestIntegrationLinuxDebianSystemdRoot boots Debian 12 with systemd as init
// under linux run by root and powers it off with systemctl.
func TestIntegrationLinuxDebianSystemdRoot(t *testing.T) {
	requireLinuxHost(t)
	img := systemdImage(t, t.TempDir())
	g := harness.Start(t, nil, append([]string{harness.Bin(t, "linux")}, systemdArgs(img, t.TempDir())...)...)
	checkSystemd(t, g)
}

// TestIntegrationLinuxDebianSystemdUser is the same machine run by an
// ordinary user from a cgroup v2 the user owns (as a systemd host delegates
// a user's session scope; without one, issue 16's cgroup item).
func TestIntegrationLinuxDebianSystemdUser(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	cg := userCgroup(t, u)
	home := u.Dir(t)
	img := systemdImage(t, home)
	u.Chown(t, img)
	bin := filepath.Join(home, "linux")
	if out, err := exec.Command("cp", harness.Bin(t, "linux"), bin).CombinedOutput(); err != nil {
		t.Fatalf("copy linux: %v: %s", err, out)
	}
	argv := append([]string{"sh", "-c", `echo $$ > "$0"/cgroup.procs && exec "$@"`, cg,
		"setpriv", "--reuid=" + itoa(int(u.UID)), "--regid=" + itoa(int(u.GID)), "--clear-groups", bin},
		systemdArgs(img, filepath.Join(home, "uml"))...)
	g := harness.Start(t, []string{"HOME=" + u.Home}, argv...)
	checkSystemd(t, g)
}

// userCgroup makes a cgroup v2 directory owned by u and removes it (and
// what the guest left in it) at cleanup.
func userCgroup(t *testing.T, u *harness.TestUser) string {
	t.Helper()
	var fs unix.Statfs_t
	base := ""
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if unix.Statfs(d, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			base = d
			break
		}
	}
	if base == "" {
		testutil.Skip(t, "no cgroup v2 hierarchy mounted")
	}
	// Not named like a machine cgroup (umlkit-*): no sweep may take it.
	cg := filepath.Join(base, fmt.Sprintf("e2e-umlkit-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.RmdirTree(cg) })
	for _, f := range []string{"", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"} {
		if err := os.Chown(filepath.Join(cg, f), int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	return cg
}
