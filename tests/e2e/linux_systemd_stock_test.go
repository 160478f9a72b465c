package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
	"github.com/umlkit/umlkit/tests/packaging"
)

// stockProbe is typed on the console once root is logged in. Its answers
// are in brackets, which the echo of the typed line never contains.
const stockProbe = `s=$(systemctl is-system-running --wait); echo "STATE=[$s]"; ` +
	`systemctl --failed --no-legend --plain | sed 's/^/FAILED-UNIT: /'; ` +
	`echo "VIRT=[$(systemd-detect-virt)]"; ` +
	`for i in $(seq 30); do n=$(networkctl list --no-legend --no-pager eth0 | awk '{print $4 "/" $5}'); ` +
	`[ "$n" = routable/configured ] && break; sleep 1; done; echo "NET=[$n]"; ip -br link show eth0; ` +
	`echo "PROBE-DONE=[$((6*7))]"` + "\n"

var (
	stockState  = regexp.MustCompile(`STATE=\[([a-z-]+)\]`)
	stockFailed = regexp.MustCompile(`(?m)^FAILED-UNIT: (\S+)`)
	stockNet    = regexp.MustCompile(`NET=\[([a-z/-]*)\]`)
)

// stockImage is issue 16's stock Debian 12 (minbase with systemd-sysv, udev,
// iproute2, procps, dbus): root without a password, fstab `/dev/ubda /
// ext4`, console-getty enabled, and systemd-networkd giving eth0 the
// address 10.0.0.N/24 on the machine whose MAC is fe:fd:0a:00:00:0N
// (N = 1..3). Nothing of ours is in it.
func stockImage(t *testing.T, dir string) string {
	t.Helper()
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	root := packaging.Chroot(t)
	os.Remove(filepath.Join(root, "usr/sbin/policy-rc.d")) // the chroot's, not the machine's
	for n := 1; n <= 3; n++ {
		network := fmt.Sprintf("[Match]\nMACAddress=fe:fd:0a:00:00:0%d\n\n[Network]\nAddress=10.0.0.%d/24\n", n, n)
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("etc/systemd/network/50-eth0-%d.network", n)), []byte(network), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, argv := range [][]string{{"passwd", "-d", "root"}, {"systemctl", "enable", "console-getty.service", "systemd-networkd.service"}} {
		if out, err := exec.Command("chroot", append([]string{root}, argv...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v in the chroot: %v\n%s", argv, err, out)
		}
	}
	for name, body := range map[string]string{"etc/fstab": "/dev/ubda / ext4 defaults 0 1\n", "etc/hostname": "stock\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "stock.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "2G").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs -d: %v\n%s", err, out)
	}
	return img
}

// stockRun is what one machine's boot of the stock image showed.
type stockRun struct {
	state    string
	net      string // eth0's networkctl state, "operational/setup"
	failed   []string
	poweroff time.Duration
}

// bootStock logs in as root on the console, runs the probe, powers off
// with systemctl and checks linux's exit status and the disk.
func bootStock(t *testing.T, g *harness.Guest, img string, boot time.Duration) stockRun {
	t.Helper()
	if err := g.WaitOutput("stock login:", boot); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(g.Stdin(), "root\n")
	if err := g.WaitOutput("root@stock:~#", time.Minute); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(g.Stdin(), stockProbe)
	if err := g.WaitOutput("PROBE-DONE=[42]", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	out := g.Output()
	var r stockRun
	if m := stockState.FindStringSubmatch(out); m != nil {
		r.state = m[1]
	}
	if m := stockNet.FindStringSubmatch(out); m != nil {
		r.net = m[1]
	}
	for _, m := range stockFailed.FindAllStringSubmatch(out, -1) {
		r.failed = append(r.failed, m[1])
	}
	sort.Strings(r.failed)
	fmt.Fprint(g.Stdin(), "systemctl poweroff\n")
	start := time.Now()
	code, err := g.Wait(3 * time.Minute)
	r.poweroff = time.Since(start)
	if err != nil || code != 0 {
		t.Fatalf("exit after systemctl poweroff = %d, %v", code, err)
	}
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn after poweroff: %v\n%s", err, out)
	}
	t.Logf("is-system-running %q, failed %v, eth0 %q, systemctl poweroff until exit %v",
		r.state, r.failed, r.net, r.poweroff.Round(10*time.Millisecond))
	return r
}

// noCgroupLeft fails if any cgroup of the machine umid is left on the host.
func noCgroupLeft(t *testing.T, umid string) {
	t.Helper()
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(p, "/") > 7 {
			return filepath.SkipDir
		}
		if d.Name() == "umlkit-"+umid {
			t.Errorf("cgroup left on the host: %s", p)
			return filepath.SkipDir
		}
		return nil
	})
}

// TestIntegrationLinuxDebianStock boots issue 16's stock Debian 12 with
// UML's plain command line (no init=, no systemd options) on our linux as
// root and as an ordinary user and on linux.uml, all at once; each logs in
// on the console, reports is-system-running and the failed units, and
// powers off with systemctl. Ours must reach "running" with no failed unit
// that linux.uml lacks, exit 0, leave a clean file system and no cgroup,
// and power off no slower than linux.uml.
func TestIntegrationLinuxDebianStock(t *testing.T) {
	requireLinuxHost(t)
	uml := harness.RealUML(t)
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	base := stockImage(t, t.TempDir())
	// One of our switches joins the three machines' eth0 (daemon transport).
	ctl := filepath.Join(u.Dir(t), "ctl") // a directory the user can reach
	harness.StartSwitch(t, harness.Bin(t, "uml_switch"), "", ctl)
	os.Chmod(ctl, 0o666) // the ordinary user's machine connects too
	args := func(img, umlDir, umid string, n int) []string {
		return []string{"ubd0=" + img, "umid=" + umid, "uml_dir=" + umlDir, "con=null", "con0=fd:0,fd:1", "mem=256M",
			fmt.Sprintf("eth0=daemon,fe:fd:0a:00:00:0%d,unix,%s", n, ctl)}
	}
	copyImage := func(t *testing.T, dir string) string {
		img := filepath.Join(dir, "run.img")
		if out, err := exec.Command("cp", "--sparse=always", base, img).CombinedOutput(); err != nil {
			t.Fatalf("copy image: %v: %s", err, out)
		}
		return img
	}
	var mu sync.Mutex
	runs := map[string]stockRun{}
	record := func(name string, r stockRun) {
		mu.Lock()
		runs[name] = r
		mu.Unlock()
	}
	t.Run("machines", func(t *testing.T) {
		t.Run("linux.uml", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			img := copyImage(t, dir)
			g := harness.Start(t, []string{"TMPDIR=" + dir}, append([]string{uml}, args(img, dir, "stock-uml", 1)...)...)
			record("linux.uml", bootStock(t, g, img, 6*time.Minute))
		})
		t.Run("root", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			img := copyImage(t, dir)
			umid := fmt.Sprintf("stock-root-%d", os.Getpid())
			g := harness.Start(t, nil, append([]string{harness.Bin(t, "linux")}, args(img, dir, umid, 2)...)...)
			record("root", bootStock(t, g, img, 3*time.Minute))
			noCgroupLeft(t, umid)
		})
		t.Run("user", func(t *testing.T) {
			t.Parallel()
			cg := userCgroup(t, u)
			home := u.Dir(t)
			img := copyImage(t, home)
			u.Chown(t, img)
			bin := filepath.Join(home, "linux")
			if out, err := exec.Command("cp", harness.Bin(t, "linux"), bin).CombinedOutput(); err != nil {
				t.Fatalf("copy linux: %v: %s", err, out)
			}
			umid := fmt.Sprintf("stock-user-%d", os.Getpid())
			argv := append([]string{"sh", "-c", `echo $$ > "$0"/cgroup.procs && exec "$@"`, cg,
				"setpriv", "--reuid=" + itoa(int(u.UID)), "--regid=" + itoa(int(u.GID)), "--clear-groups", bin},
				args(img, filepath.Join(home, "uml"), umid, 3)...)
			g := harness.Start(t, []string{"HOME=" + u.Home}, argv...)
			record("user", bootStock(t, g, img, 3*time.Minute))
			noCgroupLeft(t, umid)
		})
	})
	ref, ok := runs["linux.uml"]
	if !ok {
		return // its subtest failed and said why
	}
	refFailed := map[string]bool{}
	for _, f := range ref.failed {
		refFailed[f] = true
	}
	for _, name := range []string{"root", "user"} {
		r, ok := runs[name]
		if !ok {
			continue
		}
		for _, f := range r.failed {
			if !refFailed[f] {
				t.Errorf("ours as %s: unit %s failed, which linux.uml does not fail", name, f)
			}
		}
		if len(ref.failed) == 0 && r.state != "running" {
			t.Errorf("ours as %s: is-system-running %q, linux.uml %q", name, r.state, ref.state)
		}
		if r.net != ref.net || r.net != "routable/configured" {
			t.Errorf("ours as %s: systemd-networkd's eth0 %q, linux.uml's %q (want routable/configured)", name, r.net, ref.net)
		}
		if r.poweroff > ref.poweroff {
			t.Errorf("ours as %s took %v from systemctl poweroff to exit, linux.uml %v", name, r.poweroff, ref.poweroff)
		}
	}
}
