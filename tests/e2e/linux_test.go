package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

const bootTimeout = 60 * time.Second

// probeScript prints facts about the guest for the assertions below.
const probeScript = `echo "BOOT-MARKER pid=$$ uid=$(id -u) host=$(hostname)"
echo "ARGS=$*"
echo "ENV-foo=$foo"
grep -q ' / ' /proc/mounts && echo ROOT-MOUNTED
[ -e /dev/ubda ] && [ -e /dev/ubd/0 ] && echo UBD-NODES
echo guest-data > /written && sync && echo WROTE
touch /owned && chown 1000:1000 /owned 2>/dev/null && [ "$(stat -c %u /owned)" = 1000 ] && echo CHOWN-1000-OK
ps | grep -c . > /dev/null
poweroff -f
`

func requireLinuxHost(t *testing.T) {
	t.Helper()
	testutil.RequireUserNS(t)
	testutil.RequireFUSE(t)
	testutil.Peer(t, "fuse2fs", "fuse2fs")
}

// requireLinuxHostAs is requireLinuxHost for a linux run as u: the user, not
// the (root) test process, must be able to open /dev/fuse.
func requireLinuxHostAs(t *testing.T, u *harness.TestUser) {
	t.Helper()
	requireLinuxHost(t)
	testutil.RequireFUSEAs(t, u.UID, u.GID)
}

func checkProbe(t *testing.T, g *harness.Guest) {
	t.Helper()
	if err := g.WaitOutput("BOOT-MARKER", bootTimeout); err != nil {
		t.Fatal(err)
	}
	code, err := g.Wait(bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	out := g.Output()
	for _, want := range []string{"BOOT-MARKER pid=1 uid=0 host=(none)", "ARGS=single", "ENV-foo=bar", "ROOT-MOUNTED", "UBD-NODES", "WROTE",
		"Kernel command line: ", "Run /init as init process"} {
		if !strings.Contains(out, want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
	if code != 0 {
		t.Errorf("linux exit status after poweroff -f = %d; want 0", code)
	}
}

func TestIntegrationLinuxBootAsRoot(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{Init: probeScript})
	g := harness.BootLinux(t, img, "foo=bar", "single", "umid=root1")
	checkProbe(t, g)
	// the write reached the image: read it back with debugfs
	out, err := exec.Command("debugfs", "-R", "cat /written", img).Output()
	if err != nil || !strings.Contains(string(out), "guest-data") {
		t.Errorf("file written by the guest not in the image: %q, %v", out, err)
	}
}

func TestIntegrationLinuxBootUnprivileged(t *testing.T) {
	u := harness.UnprivilegedUser(t)
	requireLinuxHostAs(t, u)
	home := u.Dir(t)
	img := harness.BusyboxImage(t, home, harness.Image{Init: probeScript})
	u.Chown(t, img)
	umlDir := filepath.Join(home, "uml")
	g := harness.StartAs(t, u, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=unpriv", "foo=bar", "single")
	checkProbe(t, g)
	// useradd gives the test user an /etc/subuid range and Debian's uidmap
	// is installed, so guest uids 1-65535 map through newuidmap.
	if !strings.Contains(g.Output(), "uid map: guest 0 = uid ") || !strings.Contains(g.Output(), "CHOWN-1000-OK") {
		t.Errorf("unprivileged boot: no subordinate uid mapping (want the newuidmap boot line and a working chown 1000)")
	}
	if _, err := os.Stat(filepath.Join(umlDir, "unpriv")); !os.IsNotExist(err) {
		t.Errorf("umid dir left behind after halt: %v", err)
	}
}

func TestIntegrationLinuxDirectoryRoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	root := filepath.Join(t.TempDir(), "root")
	harness.RootDir(t, root, harness.Image{Init: "echo DIR-ROOT-OK > /marker; cat /marker; poweroff -f"})
	g := harness.BootLinux(t, root, "umid=dirroot")
	if err := g.WaitOutput("DIR-ROOT-OK", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
		t.Errorf("exit = %d, %v; want 0", code, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "marker")); err != nil || string(b) != "DIR-ROOT-OK\n" {
		t.Errorf("marker in the host directory = %q, %v", b, err)
	}
}

const rebootScript = `if [ -e /booted ]; then echo SECOND-BOOT; poweroff -f; fi
touch /booted; sync; echo FIRST-BOOT; reboot -f
`

func TestIntegrationLinuxReboot(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	for _, noreboot := range []bool{false, true} {
		dir := t.TempDir()
		img := harness.BusyboxImage(t, dir, harness.Image{Init: rebootScript})
		var extra []string
		if noreboot {
			extra = append(extra, "noreboot")
		}
		g := harness.BootLinux(t, img, extra...)
		code, err := g.Wait(bootTimeout)
		if err != nil {
			t.Fatal(err)
		}
		out := g.Output()
		if code != 0 || !strings.Contains(out, "FIRST-BOOT") {
			t.Errorf("noreboot=%v: exit %d; want 0 after FIRST-BOOT", noreboot, code)
		}
		if got := strings.Contains(out, "SECOND-BOOT"); got == noreboot {
			t.Errorf("noreboot=%v: second boot happened = %v", noreboot, got)
		}
	}
}

func TestIntegrationLinuxInitExitPanics(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo BYE; exit 3"})
	g := harness.BootLinux(t, img)
	code, err := g.Wait(bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 134 || !strings.Contains(g.Output(), "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300") {
		t.Errorf("init exit: status %d; want 134 with the panic line", code)
	}
}

// guestProcs returns host pids whose command line contains marker.
func guestProcs(marker string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), marker) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

func TestIntegrationLinuxSignalsAndKill9(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		dir := t.TempDir()
		marker := "424242" + map[syscall.Signal]string{syscall.SIGTERM: "1", syscall.SIGKILL: "9"}[sig]
		img := harness.BusyboxImage(t, dir, harness.Image{Init: "echo READY; exec sleep " + marker})
		umlDir := t.TempDir()
		g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=sig")
		if err := g.WaitOutput("READY", bootTimeout); err != nil {
			t.Fatal(err)
		}
		if err := testutil.WaitFor(5*time.Second, func() bool { return len(guestProcs("sleep\x00"+marker)) > 0 }); err != nil {
			t.Fatalf("guest sleep %s not visible on the host", marker)
		}
		syscall.Kill(g.Pid(), sig)
		code, err := g.Wait(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if sig == syscall.SIGTERM && code != 1 {
			t.Errorf("SIGTERM: exit status %d; want 1", code)
		}
		if err := testutil.WaitFor(5*time.Second, func() bool {
			return len(guestProcs("sleep\x00"+marker)) == 0 && len(guestProcs(img)) == 0
		}); err != nil {
			t.Errorf("%v: guest processes or fuse2fs left behind: %v %v", sig, guestProcs("sleep\x00"+marker), guestProcs(img))
		}
		if sig == syscall.SIGTERM {
			if _, err := os.Stat(filepath.Join(umlDir, "sig")); !os.IsNotExist(err) {
				t.Errorf("SIGTERM: umid dir left behind")
			}
		} else {
			// the dead instance's umid dir is stale: the next boot takes it over
			g2 := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=sig")
			if err := g2.WaitOutput("READY", bootTimeout); err != nil {
				t.Errorf("boot on the umid of a kill -9'd instance: %v", err)
			}
			syscall.Kill(g2.Pid(), syscall.SIGTERM)
			g2.Wait(20 * time.Second)
		}
	}
}

func TestIntegrationLinuxUmidInUse(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo READY; sleep 30; poweroff -f"})
	img2 := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "poweroff -f"})
	umlDir := t.TempDir()
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=busy")
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(harness.Bin(t, "linux"), "ubd0="+img2, "init=/init", "uml_dir="+umlDir, "umid=busy").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `umid "busy" is already in use by pid`) {
		t.Errorf("second boot on a live umid: %v\n%s", err, out)
	}
}

func TestLinuxBadInput(t *testing.T) {
	bin := harness.Bin(t, "linux")
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ubd0=" + filepath.Join(dir, "missing.img"), "uml_dir=" + dir}, `ubda: Can't open "` + filepath.Join(dir, "missing.img") + `": errno = 2`},
		{[]string{"uml_dir="}, "uml_dir can't be an empty string"},
		{[]string{"mem=12Q"}, "mem=12Q"},
	}
	for _, tt := range tests {
		out, err := exec.Command(bin, tt.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("linux %q = %v, %q; want failure naming %q", tt.args, err, out, tt.want)
		}
		if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 && strings.Contains(string(out), "goroutine") {
			t.Errorf("linux %q printed a stack trace", tt.args)
		}
	}
}

// TestIntegrationLinuxCOWRoot boots ubd0=cow,backing (the COW created at
// boot by our driver), writes through it, and merges it with Debian's
// uml_moo: the backing file must stay untouched until the merge, and the
// merged image must hold the guest's file and be fsck-clean.
func TestIntegrationLinuxCOWRoot(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	moo := testutil.Peer(t, "uml_moo", "uml-utilities")
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{Init: `echo cow-data > /in-cow; sync
[ -e /dev/ubda ] && dd if=/dev/ubda of=/dev/null bs=64k count=4 2>/dev/null && echo DEV-READ
echo COW-DONE; poweroff -f`})
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	cowPath := filepath.Join(dir, "root.cow")
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+cowPath+","+img, "init=/init", "uml_dir="+t.TempDir())
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
		t.Fatalf("boot on COW: exit %d, %v", code, err)
	}
	for _, want := range []string{`Creating "` + cowPath + `" as COW file for "` + img + `"`, "DEV-READ", "COW-DONE"} {
		if !strings.Contains(g.Output(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	after, _ := os.ReadFile(img)
	if string(before) != string(after) {
		t.Fatalf("backing file changed while booted through a COW")
	}
	merged := filepath.Join(dir, "merged.img")
	if out, err := exec.Command(moo, cowPath, merged).CombinedOutput(); err != nil {
		t.Fatalf("real uml_moo: %v\n%s", err, out)
	}
	out, err := exec.Command("debugfs", "-R", "cat /in-cow", merged).Output()
	if err != nil || !strings.Contains(string(out), "cow-data") {
		t.Errorf("merged image lacks the guest's file: %q, %v", out, err)
	}
	if out, err := exec.Command("e2fsck", "-fn", merged).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of the merged image: %v\n%s", err, out)
	}
}
