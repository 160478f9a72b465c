package e2e

// The machine's own /proc views (issue 16, item 2): /proc/cmdline as UML
// shows it, memory as mem= gives it, uptime from the machine's boot, the
// CPUs the machine may use; and what a guest may not do to them.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// procViewsScript prints the views as guest root and as an ordinary guest
// user; on the first boot it reboots once.
const procViewsScript = `echo "CMDLINE=[$(cat /proc/cmdline)]"
free -m | sed 's/^/FREE /'
grep MemTotal /proc/meminfo | sed 's/^/MEMINFO /'
a=$(cut -d' ' -f1 /proc/uptime); sleep 1; b=$(cut -d' ' -f1 /proc/uptime)
echo "UPTIME $a $b"
echo "CLOCK $(date +%s) $(cut -d. -f1 /proc/uptime) $(awk '/^btime/ {print $2}' /proc/stat)"
echo "BOOTID $(cat /proc/sys/kernel/random/boot_id)"
echo "CPUS $(nproc) $(grep -c ^processor /proc/cpuinfo) $(grep -c '^cpu[0-9]' /proc/stat) $(cat /sys/devices/system/cpu/online)"
grep -q 'guest:' /etc/passwd || echo 'guest:x:1000:1000::/:/bin/sh' >> /etc/passwd
su guest -c 'echo "USER-CMDLINE=[$(cat /proc/cmdline)]"; free -m | sed "s/^/USER-FREE /"; echo "USER-UPTIME $(cut -d" " -f1 /proc/uptime)"; echo x > /proc/meminfo 2>/dev/null && echo USER-WROTE-MEMINFO; echo x > /proc/uptime 2>/dev/null && echo USER-WROTE-UPTIME'
echo x > /proc/meminfo 2>/dev/null && echo ROOT-WROTE-MEMINFO
if [ -e /rebooted ] || [ "$1" = once ]; then echo VIEWS-DONE; poweroff -f; fi
touch /rebooted; sync; reboot -f
`

// procLine returns the rest of the first output line starting with prefix
// after boot (0 = first boot, 1 = after the reboot).
func procLine(t *testing.T, out, prefix string, boot int) string {
	t.Helper()
	n := 0
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			if n == boot {
				return rest
			}
			n++
		}
	}
	t.Fatalf("no %q line (boot %d) in the output", prefix, boot)
	return ""
}

func TestIntegrationLinuxProcViews(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	uml := harness.RealUML(t)

	// The same command line for linux.uml and for ours.
	args := func(img, umlDir string) []string {
		return []string{"ubd0=" + img, "umid=pv", "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null", "quiet", "foo=bar",
			"init=/init", "uml_dir=" + umlDir}
	}
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{Init: procViewsScript})
	umlDir := filepath.Join(dir, "uml")
	os.Mkdir(umlDir, 0o755)
	rg := harness.Start(t, []string{"TMPDIR=" + umlDir}, append([]string{uml}, append(args(img, umlDir), "once")...)...)
	if err := rg.WaitOutput("VIEWS-DONE", bootTimeout); err != nil {
		t.Fatalf("linux.uml: %v", err)
	}
	rg.Wait(bootTimeout)
	want := procLine(t, rg.Output(), "CMDLINE=", 0)
	if !strings.Contains(want, " mem=64M ") || !strings.HasSuffix(want, " once root=98:0 console=tty0]") {
		t.Fatalf("linux.uml's /proc/cmdline is %s; the test expects mem= in it and root=, console= appended", want)
	}

	for _, asUser := range []bool{false, true} {
		name := map[bool]string{false: "root", true: "user"}[asUser]
		t.Run(name, func(t *testing.T) {
			r := newMountRun(t, asUser)
			img := harness.BusyboxImage(t, r.dir, harness.Image{Init: procViewsScript})
			r.chown(img)
			umlDir := filepath.Join(r.dir, "uml")
			argv := append([]string{harness.Bin(t, "linux")}, append(args(img, umlDir), "once")...)
			cpus := runtime.NumCPU()
			limited := !asUser && cpus > 1
			if limited {
				// the machine may use the host's last CPU only
				argv = append([]string{"taskset", "-c", strconv.Itoa(cpus - 1)}, argv...)
			}
			g := r.start(argv...)
			if err := g.WaitOutput("VIEWS-DONE", bootTimeout); err != nil {
				t.Fatal(err)
			}
			if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
				t.Fatalf("linux exit %d, %v", code, err)
			}
			out := g.Output()
			// Our command line is linux.uml's for the same words, but
			// for the image's path, which is another file here.
			got := procLine(t, out, "CMDLINE=", 0)
			wantHere := strings.Replace(strings.Replace(want, "ubd0="+filepath.Join(dir, "root.img"), "ubd0="+img, 1),
				"uml_dir="+filepath.Join(dir, "uml"), "uml_dir="+umlDir, 1)
			if got != wantHere {
				t.Errorf("/proc/cmdline = %s\nlinux.uml's   = %s", got, wantHere)
			}
			if u := procLine(t, out, "USER-CMDLINE=", 0); u != got {
				t.Errorf("as a guest user /proc/cmdline = %s; as root %s", u, got)
			}
			checkFree(t, procLine(t, out, "FREE Mem:", 0), "free -m as guest root")
			checkFree(t, procLine(t, out, "USER-FREE Mem:", 0), "free -m as a guest user")
			if m := procLine(t, out, "MEMINFO MemTotal:", 0); strings.Fields(m)[0] != "65536" {
				t.Errorf("MemTotal: %s; want 65536 kB", m)
			}
			checkUptime(t, out)
			for _, bad := range []string{"USER-WROTE-MEMINFO", "USER-WROTE-UPTIME", "ROOT-WROTE-MEMINFO"} {
				if strings.Contains(out, bad) {
					t.Errorf("guest output has %s: a view was written", bad)
				}
			}
			f := strings.Fields(procLine(t, out, "CPUS ", 0))
			switch {
			case len(f) != 4:
				t.Errorf("CPUS line %q", f)
			case limited && (f[0] != "1" || f[1] != "1" || f[2] != "1" || f[3] != strconv.Itoa(cpus-1)):
				t.Errorf("on CPU %d only: nproc, cpuinfo processors, /proc/stat cpuN lines, online = %q; want 1 1 1 %d", cpus-1, f, cpus-1)
			case !limited && (f[0] != strconv.Itoa(cpus) || f[1] != strconv.Itoa(cpus)):
				t.Errorf("on every CPU: nproc and cpuinfo processors = %q; want the host's %d", f[:2], cpus)
			}
		})
	}
}

// checkFree checks a "Mem:" line of busybox free -m for mem=64M.
func checkFree(t *testing.T, line, who string) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "64" {
		t.Errorf("%s: Mem: %s; want a total of 64 (mem=64M)", who, line)
		return
	}
	total, _ := strconv.Atoi(f[0])
	used, _ := strconv.Atoi(f[1])
	free, _ := strconv.Atoi(f[2])
	if used < 0 || free < 0 || used+free > total {
		t.Errorf("%s: used %d + free %d do not fit in total %d", who, used, free, total)
	}
}

// checkUptime: /proc/uptime counts from this boot and grows; btime plus
// the uptime is the time of day (ps's start times add up).
func checkUptime(t *testing.T, out string) {
	t.Helper()
	var a, b, u float64
	fmt.Sscan(procLine(t, out, "UPTIME ", 0), &a, &b)
	fmt.Sscan(procLine(t, out, "USER-UPTIME ", 0), &u)
	// the machine booted while this test process ran: its uptime cannot
	// be longer than that
	if lived := time.Since(testStart).Seconds() + 1; a <= 0 || b <= a || u < b || u > lived {
		t.Errorf("uptime %v, %v a second later, %v as a user; this test has run %.0f s: want the machine's, growing", a, b, u, lived)
	}
	var now, up, btime int64
	fmt.Sscan(procLine(t, out, "CLOCK ", 0), &now, &up, &btime)
	if d := now - up - btime; d < -2 || d > 2 {
		t.Errorf("date %d - uptime %d - btime %d = %d; want about 0", now, up, btime, d)
	}
}

var testStart = time.Now()

// TestIntegrationLinuxProcViewsReboot: a reboot starts the machine's clock
// again (btime moves forward by at least the time before the reboot) and
// brings a new boot_id.
func TestIntegrationLinuxProcViewsReboot(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "sleep 2\n" + procViewsScript})
	g := harness.BootLinux(t, img, "mem=64M")
	if err := g.WaitOutput("VIEWS-DONE", 2*bootTimeout); err != nil {
		t.Fatal(err)
	}
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
		t.Fatalf("linux exit %d, %v", code, err)
	}
	out := g.Output()
	var now1, up1, bt1, now2, up2, bt2 int64
	fmt.Sscan(procLine(t, out, "CLOCK ", 0), &now1, &up1, &bt1)
	fmt.Sscan(procLine(t, out, "CLOCK ", 1), &now2, &up2, &bt2)
	if up1 < 2 || bt2 < bt1+2 {
		t.Errorf("first boot: uptime %d, btime %d; after the reboot: uptime %d, btime %d: want the clock restarted at the reboot", up1, bt1, up2, bt2)
	}
	if id1, id2 := procLine(t, out, "BOOTID ", 0), procLine(t, out, "BOOTID ", 1); id1 == id2 || len(id1) != 36 {
		t.Errorf("boot_id %q, then %q after the reboot; want two ids", id1, id2)
	}
	if host, _ := os.ReadFile("/proc/sys/kernel/random/boot_id"); strings.TrimSpace(string(host)) == procLine(t, out, "BOOTID ", 0) {
		t.Errorf("the guest's boot_id is the host's")
	}
}

// procViewsAttack runs as guest root: every way to change a view, to get
// past one, or to load K.
const procViewsAttack = `echo x > /proc/meminfo 2>/dev/null && echo WROTE-MEMINFO
echo x >> /proc/uptime 2>/dev/null && echo APPENDED-UPTIME
( : > /proc/cmdline ) 2>/dev/null && echo TRUNCATED-CMDLINE
chmod 666 /proc/meminfo 2>/dev/null && echo CHMOD-MEMINFO
chown 1000 /proc/meminfo 2>/dev/null && echo CHOWN-MEMINFO
touch /proc/meminfo 2>/dev/null && echo TOUCHED-MEMINFO
mount -o remount,rw,bind /proc/meminfo 2>/dev/null; echo x > /proc/meminfo 2>/dev/null && echo WROTE-AFTER-REMOUNT
mount -o remount,rw /proc/meminfo 2>/dev/null; echo x > /proc/meminfo 2>/dev/null && echo WROTE-AFTER-SB-REMOUNT
ls /proc/meminfo/.. >/dev/null 2>&1 && echo LISTED-PAST-VIEW
ls -a "$(awk '$5 == "/proc/meminfo" {print $4}' /proc/self/mountinfo)" 2>/dev/null | grep -q . && echo ROOT-PATH-REACHABLE
mkdir -p /mnt/v; mount --bind /proc/meminfo /mnt/v 2>/dev/null && { ls /mnt/v/.. >/dev/null 2>&1 && echo BIND-LISTED; umount /mnt/v; }
[ "$(stat -c %a%u /proc/meminfo)" = 4440 ] && echo VIEW-MODE-OK
# many opens held at once, many opens in a row, reads far past the end
i=0; while [ $i -lt 100 ]; do sleep 3 < /proc/cpuinfo & i=$((i+1)); done
i=0; while [ $i -lt 300 ]; do cat /proc/meminfo > /dev/null; i=$((i+1)); done
dd if=/proc/cpuinfo of=/dev/null bs=1M count=64 2>/dev/null
dd if=/proc/meminfo of=/dev/null bs=4k skip=1000000 count=1 2>/dev/null
wait
grep -q '^MemTotal: *65536 kB' /proc/meminfo && echo VIEW-STILL-SERVED
# a guest root that unmounts the view sees the host's file: nothing more
umount /proc/meminfo && grep -q "^MemTotal: *$HOSTTOTAL kB" /proc/meminfo && echo UNMOUNTED-HOST-FILE
echo ATTACK-DONE`

// TestIntegrationIsolationProcViews: guest root (as root-run and user-run
// linux) cannot write or re-own the views, cannot reach the FUSE file
// system behind them, and K keeps serving them under many opens and
// reads; unmounting one shows the host's file, as without views.
func TestIntegrationIsolationProcViews(t *testing.T) {
	host, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	hostTotal := strings.Fields(strings.SplitN(string(host), "\n", 2)[0])[1]
	forBoth(t, func(t *testing.T, r *mountRun) {
		out := r.boot("HOSTTOTAL="+hostTotal+"\n"+procViewsAttack, "mem=64M")
		if !strings.Contains(out, "ATTACK-DONE") {
			t.Fatalf("the attack did not finish:\n%s", out)
		}
		expect(t, out, "VIEW-MODE-OK", "VIEW-STILL-SERVED", "UNMOUNTED-HOST-FILE")
		for _, bad := range []string{"WROTE-MEMINFO", "APPENDED-UPTIME", "TRUNCATED-CMDLINE", "CHMOD-MEMINFO", "CHOWN-MEMINFO",
			"TOUCHED-MEMINFO", "WROTE-AFTER-REMOUNT", "WROTE-AFTER-SB-REMOUNT", "LISTED-PAST-VIEW", "ROOT-PATH-REACHABLE", "BIND-LISTED"} {
			if strings.Contains(out, bad) {
				t.Errorf("guest output has %s", bad)
			}
		}
		if t.Failed() {
			t.Logf("guest output:\n%s", out)
		}
	})
}
