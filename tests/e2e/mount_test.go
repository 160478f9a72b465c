package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/tests/harness"
)

// mountBoot boots our linux on a busybox image whose /init is script, as
// root or as the unprivileged test user, with extra command-line words
// (extra may use {DIR} for the returned work directory, made first), waits
// for it to power off and returns the console output. dir is readable and
// writable by whoever runs the guest.
type mountRun struct {
	t    *testing.T
	dir  string
	user *harness.TestUser
}

func newMountRun(t *testing.T, unprivileged bool) *mountRun {
	t.Helper()
	requireLinuxHost(t)
	r := &mountRun{t: t}
	if unprivileged {
		r.user = harness.UnprivilegedUser(t)
		requireLinuxHostAs(t, r.user)
		r.dir = r.user.Dir(t)
	} else {
		r.dir = t.TempDir()
	}
	return r
}

// file writes a host file in the run's directory, owned by the guest's user.
func (r *mountRun) file(name, content string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.chown(filepath.Dir(p))
	r.chown(p)
	return p
}

// start runs argv as the run's user (or as root).
func (r *mountRun) start(argv ...string) *harness.Guest {
	r.t.Helper()
	if r.user != nil {
		return harness.StartAs(r.t, r.user, argv...)
	}
	return harness.Start(r.t, nil, argv...)
}

func (r *mountRun) chown(p string) {
	if r.user != nil {
		r.user.Chown(r.t, p)
	}
}

// ext2 makes an ext2 image of sizeMB holding files (mke2fs -d).
func (r *mountRun) ext2(name string, sizeMB int, files map[string]string) string {
	r.t.Helper()
	src := filepath.Join(r.dir, name+".d")
	os.MkdirAll(src, 0o755)
	for n, c := range files {
		os.WriteFile(filepath.Join(src, n), []byte(c), 0o644)
	}
	img := filepath.Join(r.dir, name)
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext2", "-d", src, img, fmt.Sprintf("%dM", sizeMB)).CombinedOutput(); err != nil {
		r.t.Fatalf("mke2fs: %v: %s", err, out)
	}
	os.RemoveAll(src)
	r.chown(img)
	return img
}

// boot runs script as the guest's /init and returns the console output
// after the guest powered off.
func (r *mountRun) boot(script string, extra ...string) string {
	r.t.Helper()
	return r.bootWith(script, nil, extra...)
}

// bootWith is boot with extra files in the image.
func (r *mountRun) bootWith(script string, files map[string]string, extra ...string) string {
	r.t.Helper()
	img := harness.BusyboxImage(r.t, r.dir, harness.Image{Init: script + "\npoweroff -f\n", Files: files})
	r.chown(img)
	argv := append([]string{harness.Bin(r.t, "linux"), "ubd0=" + img, "init=/init", "uml_dir=" + filepath.Join(r.dir, "uml")}, extra...)
	g := r.start(argv...)
	if _, err := g.Wait(bootTimeout); err != nil {
		r.t.Fatalf("%v\n%s", err, g.Output())
	}
	os.Remove(img)
	return g.Output()
}

func expect(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("guest output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("guest output:\n%s", out)
	}
}

func forBoth(t *testing.T, f func(t *testing.T, r *mountRun)) {
	for _, unpriv := range []bool{false, true} {
		name := "root"
		if unpriv {
			name = "user"
		}
		t.Run(name, func(t *testing.T) { f(t, newMountRun(t, unpriv)) })
	}
}

func TestIntegrationLinuxMountHostfs(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		r.file("share/hello.txt", "HELLO-FROM-HOST\n")
		share := filepath.Join(r.dir, "share")
		out := r.boot(`mkdir -p /mnt/host /mnt/share /mnt/ro /mnt/t
mount none /mnt/host -t hostfs && cat /mnt/host` + share + `/hello.txt
echo guest-wrote > /mnt/host` + share + `/fromguest.txt && echo WRITE-OK
umount /mnt/host && [ ! -e /mnt/host` + share + ` ] && echo UMOUNT-OK
mount -t hostfs none /mnt/share -o ` + share + ` && cat /mnt/share/hello.txt | sed s/HELLO/OPATH/
grep -q ' /mnt/share ' /proc/mounts && echo IN-PROC-MOUNTS
mount -t hostfs -o ` + share + `,ro none /mnt/ro && ls /mnt/ro/hello.txt && { echo x > /mnt/ro/new 2>/dev/null || echo RO-REFUSED; }
mount -t hostfs none /mnt/t -o /does/not/exist 2>&1 || echo MISSING-REFUSED
mount -t tmpfs none /mnt/t && touch /mnt/t/f && echo TMPFS-OK
echo 'guest:x:1000:1000::/:/bin/sh' >> /etc/passwd; mkdir -p /mnt/u
su guest -c 'mount -t hostfs none /mnt/u -o ` + share + `' 2>&1 || echo NONROOT-REFUSED
ls /mnt/u/hello.txt 2>/dev/null || echo NONROOT-NOT-MOUNTED`)
		expect(t, out, "NONROOT-REFUSED", "NONROOT-NOT-MOUNTED", "HELLO-FROM-HOST", "WRITE-OK", "UMOUNT-OK", "OPATH-FROM-HOST", "IN-PROC-MOUNTS", "RO-REFUSED", "MISSING-REFUSED", "TMPFS-OK")
		if b, err := os.ReadFile(filepath.Join(share, "fromguest.txt")); err != nil || string(b) != "guest-wrote\n" {
			t.Errorf("file written by the guest on the host = %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(share, "new")); err == nil {
			t.Errorf("a read-only hostfs mount let the guest create a file")
		}
	})
}

func TestIntegrationLinuxMountHostfsRoot(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		r.file("jail/inside.txt", "INSIDE-JAIL\n")
		r.file("jail/sub/deeper.txt", "DEEPER\n")
		r.file("outside.txt", "OUTSIDE\n")
		out := r.boot(`mkdir -p /mnt/a /mnt/b /mnt/c
mount none /mnt/a -t hostfs && cat /mnt/a/inside.txt && ls /mnt/a/outside.txt 2>/dev/null || echo NO-OUTSIDE
mount -t hostfs none /mnt/b -o /sub && cat /mnt/b/deeper.txt
mount -t hostfs none /mnt/c -o /../.. && cat /mnt/c/inside.txt | sed s/INSIDE/CLAMPED/`,
			"hostfs="+filepath.Join(r.dir, "jail")+",append")
		expect(t, out, "INSIDE-JAIL", "NO-OUTSIDE", "DEEPER", "CLAMPED-JAIL", "hostfs: append is not supported")
	})
}

// checkImage runs e2fsck -fn on img and reads path with debugfs.
func checkImage(t *testing.T, img, path string) string {
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
	out, err := exec.Command("debugfs", "-R", "cat "+path, img).Output()
	if err != nil {
		t.Errorf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}

func TestIntegrationLinuxMountUbd(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		disk := r.ext2("disk.img", 16, map[string]string{"hello.txt": "HELLO-FROM-DISK\n"})
		r.ext2("loop.img", 8, map[string]string{"inloop.txt": "HELLO-FROM-LOOP-FILE\n"})
		out := r.boot(`mkdir -p /mnt/h /mnt/l && mount -t hostfs none /mnt/h -o `+r.dir+` && mount -o loop /mnt/h/loop.img /mnt/l && cat /mnt/l/inloop.txt && umount /mnt/l && umount /mnt/h && echo LOOP-FILE-OK
mount /dev/ubdb /mnt && cat /mnt/hello.txt
dd if=/dev/loop0 bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | sed s/^/LOOP-WINDOW/
losetup /dev/loop0 | sed s/^/LOSETUP-/
echo guest-wrote > /mnt/written.txt && echo WRITE-OK
grep ' /mnt ' /proc/mounts
umount /mnt && [ ! -e /mnt/hello.txt ] && echo UMOUNT-OK
mount -t ext4 /dev/ubd/1 /mnt && cat /mnt/written.txt | sed s/guest/again/ && umount /mnt && echo SECOND-OK
mount -t vfat /dev/ubdb /mnt 2>&1 || echo VFAT-REFUSED
mount -o ro /dev/ubdb /mnt && { touch /mnt/x 2>/dev/null || echo RO-REFUSED; } && umount /mnt
mount -t tmpfs none /mnt && echo TMPFS-OK && umount /mnt`,
			"ubd1="+disk)
		expect(t, out, "LOOP-WINDOW 53 ef", "LOSETUP-/dev/loop0: 0 /dev/ubdb", "HELLO-FROM-LOOP-FILE", "LOOP-FILE-OK", "HELLO-FROM-DISK", "WRITE-OK", "UMOUNT-OK", "again-wrote", "SECOND-OK", "VFAT-REFUSED", "RO-REFUSED", "TMPFS-OK")
		// As root the host's ext4 driver serves the disk (a real loop
		// device set up by linux's host process); otherwise fuse2fs.
		if r.user == nil {
			expect(t, out, " /mnt ext4 rw")
		} else {
			expect(t, out, " /mnt fuse.")
		}
		if got := checkImage(t, disk, "/written.txt"); got != "guest-wrote\n" {
			t.Errorf("written.txt in the image = %q", got)
		}
	})
}

func TestIntegrationLinuxMountUbdCOW(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		backing := r.ext2("backing.img", 16, map[string]string{"hello.txt": "HELLO-FROM-BACKING\n"})
		before, _ := os.ReadFile(backing)
		cow := filepath.Join(r.dir, "disk.cow")
		out := r.boot(`mount /dev/ubdb /mnt && cat /mnt/hello.txt && echo cow-data > /mnt/cow.txt && umount /mnt && echo COW-UMOUNT-OK`,
			"ubd1="+cow+","+backing)
		expect(t, out, "HELLO-FROM-BACKING", "COW-UMOUNT-OK")
		if after, _ := os.ReadFile(backing); string(after) != string(before) {
			t.Errorf("the backing file changed under a COW disk")
		}
		merged := filepath.Join(r.dir, "merged.img")
		if out, err := exec.Command(harness.Bin(t, "uml_moo"), cow, merged).CombinedOutput(); err != nil {
			t.Fatalf("uml_moo: %v\n%s", err, out)
		}
		if got := checkImage(t, merged, "/cow.txt"); got != "cow-data\n" {
			t.Errorf("cow.txt in the merged image = %q", got)
		}
	})
}

func TestIntegrationLinuxMountNewDisk(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		disk := filepath.Join(r.dir, "new.img")
		if err := os.WriteFile(disk, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(disk, 16<<20); err != nil {
			t.Fatal(err)
		}
		r.chown(disk)
		// busybox mke2fs wants -F for a device that is not a block device,
		// and refuses a name that is a mount point (/dev/ubdb is a bind
		// mount in the guest; /dev/ubd/1 is a symlink to it).
		out := r.boot(`mke2fs -F /dev/ubd/1 >/dev/null && echo MKFS-OK
mkdir -p /data && mount /dev/ubdb /data && echo made-in-guest > /data/file.txt && umount /data && echo NEW-DISK-OK`,
			"ubd1="+disk)
		expect(t, out, "MKFS-OK", "NEW-DISK-OK")
		if got := checkImage(t, disk, "/file.txt"); got != "made-in-guest\n" {
			t.Errorf("file.txt in the new disk = %q", got)
		}
	})
}

// TestIntegrationLinuxMountDebian: util-linux's mount and e2fsprogs'
// mkfs.ext2 in a Debian guest (mount sets up its loop device with
// LOOP_CONFIGURE and checks /sys/block), as root.
func TestIntegrationLinuxMountDebian(t *testing.T) {
	requireLinuxHost(t)
	img := debianImage(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("HELLO-DEBIAN-HOSTFS\n"), 0o644)
	disk := filepath.Join(dir, "new.img")
	os.WriteFile(disk, nil, 0o644)
	os.Truncate(disk, 32<<20)
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "ubd1="+disk, "init=/bin/sh", "uml_dir="+t.TempDir(), "umid=debmnt")
	if err := g.WaitOutput("Run /bin/sh as init process", bootTimeout); err != nil {
		t.Fatal(err)
	}
	script := `mkdir -p /mnt/d /mnt/h
mkfs.ext2 -q /dev/ubdb && echo MKFS""-OK
mount /dev/ubdb /mnt/d && echo debian > /mnt/d/f && cat /mnt/d/f | sed s/debian/DEB-READ/ && umount /mnt/d && echo DEB""-UBD-OK
mount -t hostfs none /mnt/h -o ` + dir + ` && cat /mnt/h/hello.txt && umount /mnt/h && echo DEB""-HOSTFS-OK
/sbin/poweroff -f
`
	g.Stdin().Write([]byte(script))
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatalf("%v\n%s", err, g.Output())
	}
	expect(t, g.Output(), "MKFS-OK", "DEB-READ", "DEB-UBD-OK", "HELLO-DEBIAN-HOSTFS", "DEB-HOSTFS-OK")
	if got := checkImage(t, disk, "/f"); got != "debian\n" {
		t.Errorf("/f on the disk = %q", got)
	}
}

// TestIntegrationLinuxMountNoUmount: a disk still mounted when the guest
// powers off is unmounted cleanly, its data on the image.
func TestIntegrationLinuxMountNoUmount(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		disk := r.ext2("disk.img", 16, nil)
		out := r.boot(`mount /dev/ubdb /mnt && echo left-mounted > /mnt/left.txt && echo LEFT-OK`, "ubd1="+disk)
		expect(t, out, "LEFT-OK")
		if got := checkImage(t, disk, "/left.txt"); got != "left-mounted\n" {
			t.Errorf("left.txt in the image = %q", got)
		}
	})
}

// TestIntegrationLinuxMountRemount remounts disk file systems as
// systemd-remount-fs and shutdown scripts do: `mount -o remount,ro|rw` of
// the root and of a mounted ubd disk works (as root the host mounts them,
// so the mount emulator carries the remount out on the mount), a
// read-only mount refuses writes, and a disk opened read-only stays so.
func TestIntegrationLinuxMountRemount(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		data := r.ext2("data.img", 8, map[string]string{"a": "A"})
		ro := r.ext2("ro.img", 8, map[string]string{"b": "B"})
		r.chown(data)
		r.chown(ro)
		out := r.boot(`mount -o remount,rw / && echo ROOT-REMOUNT-OK
mkdir -p /mnt/d /mnt/r
mount /dev/ubdb /mnt/d && echo MOUNTED
mount -o remount,ro /mnt/d && echo REMOUNT-RO-OK
touch /mnt/d/x 2>/dev/null || echo WRITE-REFUSED
mount -o remount,rw /mnt/d && echo REMOUNT-RW-OK
echo y > /mnt/d/y && echo WRITE-OK
umount /mnt/d && echo UMOUNT-OK
mount -o ro /dev/ubdc /mnt/r && echo RO-MOUNTED
mount -o remount,rw /mnt/r 2>/dev/null; echo "RW-ON-RO=[$?]"
touch /mnt/r/z 2>/dev/null || echo RO-WRITE-REFUSED
umount /mnt/r`, "ubdb="+data, "ubdcr="+ro)
		expect(t, out, "ROOT-REMOUNT-OK", "MOUNTED", "REMOUNT-RO-OK", "WRITE-REFUSED", "REMOUNT-RW-OK",
			"WRITE-OK", "UMOUNT-OK", "RO-MOUNTED", "RO-WRITE-REFUSED")
		if r.user == nil && strings.Contains(out, "RW-ON-RO=[0]") {
			t.Errorf("remount,rw of a read-only disk succeeded")
		}
		if got := checkImage(t, data, "/y"); got != "y\n" {
			t.Errorf("file written after remount,rw reads %q on the host", got)
		}
	})
}
