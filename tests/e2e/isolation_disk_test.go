package e2e

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/tests/harness"
)

// diskProbeFiles are the guest's users: u1 an ordinary user, u2 a member
// of the group disk (gid 6, as on Debian).
var diskProbeFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nu1:x:1000:1000::/:/bin/sh\nu2:x:1001:1001::/:/bin/sh\n",
	"etc/group":  "root:x:0:\ndisk:x:6:u2\nu1:x:1000:\nu2:x:1001:\n",
}

// diskProbeScript is run as the guest's /init (as root) with ubd1 an ext2
// image that nobody may change and ubd2 a blank scratch disk. It tries the
// raw disks and the loop devices as u1 and prints NAME-ALLOWED or
// NAME-REFUSED: message for each try, then checks that root and the group
// disk still can.
const diskProbeScript = `probe() { # marker user command
	out=$(su "$2" -c "$3" 2>&1) && echo "$1-ALLOWED" || echo "$1-REFUSED: $(echo $out)"
}
ls -ln /dev/ubda /dev/ubdb /dev/ubdc /dev/loop0 /dev/loop-control 2>&1 | sed 's/^/LS /'
su u1 -c id | sed 's/^/ID /'
probe U-READ-UBDA u1 'dd if=/dev/ubda of=/dev/null bs=512 count=1'
probe U-WRITE-UBDB u1 'echo PWNED | dd of=/dev/ubdb bs=512 count=1 conv=notrunc,sync'
probe U-WRITE-UBDB-TRUNC u1 'echo PWNED | dd of=/dev/ubdb'
probe U-LOOPCTL u1 'exec 3<>/dev/loop-control'
probe U-READ-LOOP0 u1 'dd if=/dev/loop0 of=/dev/null bs=512 count=1'
probe U-CHMOD u1 'chmod 666 /dev/ubdb'
probe U-USERNS-READ u1 'unshare -Ur dd if=/dev/ubda of=/dev/null bs=512 count=1'
probe G-READ-UBDA u2 'dd if=/dev/ubda of=/dev/null bs=512 count=1'
mke2fs -F /dev/ubd/2 >/dev/null && mkdir -p /mnt/c && mount /dev/ubdc /mnt/c && echo ROOT-MOUNT-OK
losetup -a 2>&1 | sed 's/^/LOSETUP /'
ls -ln /dev/loop0 2>&1 | sed 's/^/LS-BOUND /'
probe U-READ-LOOP0-BOUND u1 'dd if=/dev/loop0 of=/dev/null bs=512 count=1'
probe U-WRITE-LOOP0-BOUND u1 'echo PWNED | dd of=/dev/loop0 bs=512 seek=2 count=1 conv=notrunc,sync'
echo root-data > /mnt/c/f && umount /mnt/c && echo ROOT-UMOUNT-OK
dd if=/dev/ubdc bs=512 skip=2 count=1 2>/dev/null | grep -q PWNED && echo SCRATCH-WRITTEN || echo SCRATCH-INTACT
dd if=/dev/ubda of=/dev/null bs=512 count=1 2>/dev/null && echo ROOT-READ-OK
chmod 600 /dev/ubdb && ls -ln /dev/ubdb | sed 's/^/CHMOD /'
probe G-READ-UBDB-600 u2 'dd if=/dev/ubdb of=/dev/null bs=512 count=1'
chmod 660 /dev/ubdb && chown 1000 /dev/ubdc && ls -ln /dev/ubdc | sed 's/^/CHOWN /'
probe U-READ-OWNED u1 'dd if=/dev/ubdc of=/dev/null bs=512 count=1'
`

// diskRefusals are the tries an ordinary guest user must lose.
var diskRefusals = []string{"U-READ-UBDA", "U-WRITE-UBDB", "U-WRITE-UBDB-TRUNC", "U-LOOPCTL", "U-READ-LOOP0",
	"U-READ-LOOP0-BOUND", "U-WRITE-LOOP0-BOUND", "G-READ-UBDB-600"}

var lsDevice = regexp.MustCompile(`(?m)^LS (\S+)\s+\d+\s+(\d+)\s+(\d+)\s.*/dev/(ubd[abc]|loop0|loop-control)\r?$`)

// TestIntegrationIsolationDisk: an ordinary guest user can neither read
// nor write the raw disks or the loop devices (root:disk 0660, checked on
// every open), guest root and the group disk still can, and the host file
// behind a disk is unchanged. The same probe runs on linux.uml, whose
// answer is logged.
func TestIntegrationIsolationDisk(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		disk := r.ext2("disk.img", 8, map[string]string{"secret.txt": "SECRET\n"})
		scratch := filepath.Join(r.dir, "scratch.img")
		if err := os.WriteFile(scratch, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(scratch, 8<<20); err != nil {
			t.Fatal(err)
		}
		r.chown(scratch)
		before := diskProbeHash(t, disk)
		img := harness.BusyboxImage(t, r.dir, harness.Image{Init: diskProbeScript + "poweroff -f\n", Files: diskProbeFiles})
		r.chown(img)
		argv := []string{harness.Bin(t, "linux"), "ubd0=" + img, "ubd1=" + disk, "ubd2=" + scratch, "init=/init", "uml_dir=" + filepath.Join(r.dir, "uml")}
		g := r.start(argv...)
		if _, err := g.Wait(bootTimeout); err != nil {
			t.Fatalf("%v\n%s", err, g.Output())
		}
		out := g.Output()
		t.Logf("ours:\n%s", diskProbeLines(out))
		if !strings.Contains(out, "ID uid=1000(u1)") {
			t.Fatalf("the guest could not switch to its ordinary user u1:\n%s", out)
		}
		for _, m := range diskRefusals {
			if !strings.Contains(out, m+"-REFUSED: ") || !regexp.MustCompile(`(?m)^`+m+`-REFUSED: .*Permission denied`).MatchString(out) {
				t.Errorf("%s was not refused with \"Permission denied\"", m)
			}
		}
		for _, m := range []string{"U-CHMOD", "U-USERNS-READ"} {
			if !strings.Contains(out, m+"-REFUSED: ") {
				t.Errorf("%s was not refused", m)
			}
		}
		expect(t, out, "G-READ-UBDA-ALLOWED", "ROOT-MOUNT-OK", "ROOT-UMOUNT-OK", "SCRATCH-INTACT", "ROOT-READ-OK",
			"CHMOD -rw-------", "CHOWN -rw-rw----    1 1000     6", "U-READ-OWNED-ALLOWED")
		seen := map[string]bool{}
		for _, m := range lsDevice.FindAllStringSubmatch(out, -1) {
			seen[m[4]] = true
			if mode, uid, gid := m[1], m[2], m[3]; !strings.HasSuffix(mode, "rw-rw----") || uid != "0" || gid != "6" {
				t.Errorf("/dev/%s is %s %s:%s; want rw-rw---- 0:6 (root:disk 0660)", m[4], mode, uid, gid)
			}
		}
		if len(seen) != 5 {
			t.Errorf("ls -ln listed %v; want ubda, ubdb, ubdc, loop0, loop-control", seen)
		}
		if after := diskProbeHash(t, disk); after != before {
			t.Errorf("the host file behind /dev/ubdb changed")
		}
		if got := checkImage(t, scratch, "/f"); got != "root-data\n" {
			t.Errorf("/f on the scratch disk = %q; want root's write", got)
		}
	})
	t.Run("uml", func(t *testing.T) {
		harness.RealUML(t)
		dir := t.TempDir()
		r := &mountRun{t: t, dir: dir}
		disk := r.ext2("disk.img", 8, map[string]string{"secret.txt": "SECRET\n"})
		scratch := filepath.Join(dir, "scratch.img")
		os.WriteFile(scratch, nil, 0o644)
		os.Truncate(scratch, 8<<20)
		before := diskProbeHash(t, disk)
		img := harness.BusyboxImage(t, dir, harness.Image{Init: diskProbeScript + "poweroff -f\n", Files: diskProbeFiles})
		g := harness.BootRealUML(t, img, "ubd1="+disk, "ubd2="+scratch)
		if _, err := g.Wait(bootTimeout); err != nil {
			t.Fatalf("%v\n%s", err, g.Output())
		}
		t.Logf("linux.uml:\n%s", diskProbeLines(g.Output()))
		t.Logf("linux.uml: host file behind ubdb unchanged: %v", diskProbeHash(t, disk) == before)
	})
}

// diskProbeLines returns the lines of out that diskProbeScript printed.
func diskProbeLines(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if regexp.MustCompile(`^(LS|LS-BOUND|ID|LOSETUP|CHMOD|CHOWN) |^[A-Z0-9-]+-(ALLOWED|REFUSED|OK|INTACT|WRITTEN)`).MatchString(l) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func diskProbeHash(t *testing.T, p string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
