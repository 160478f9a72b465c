package e2e

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/parttable"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
	"github.com/umlkit/umlkit/tests/packaging"
)

// partitionTools are the Debian packages of the partitioning tools the
// Debian guest runs (util-linux's sfdisk and fdisk, parted and partprobe,
// mkfs.vfat); blkid, lsblk, mount and mke2fs are in minbase.
const partitionTools = "fdisk,parted,dosfstools"

// partitionProbe is the Debian guest's init: every step prints "OK name"
// or "FAIL name rc=N: output". ubdb gets a DOS table, ubdc a GPT (both by
// sfdisk, two partitions), each partition 1 an ext4 with /file; ubdd gets
// an MBR with an extended partition from fdisk, then a GPT from parted.
const partitionProbe = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
mount -t proc proc /proc
step() { name=$1; shift; if out=$("$@" 2>&1); then echo "OK $name"; else echo "FAIL $name rc=$?: $(echo $out)"; fi; }
step sfdisk-dos sh -c 'printf "label: dos\n,16M,L\n,,L\n" | sfdisk -q /dev/ubdb'
step sfdisk-gpt sh -c 'printf "label: gpt\n,16M,L\n,,L\n" | sfdisk -q /dev/ubdc'
step nodes test -e /dev/ubdb1 -a -e /dev/ubdb2 -a -e /dev/ubdc1 -a -e /dev/ubdc2
step fdisk-l sh -c 'fdisk -l /dev/ubdb | grep "^/dev/ubdb2 *34816 *131071 *96256 *47M 83 Linux"'
step parted-print sh -c 'parted -s /dev/ubdc print | grep "^ 2 *17.8MB *66.1MB"'
step partprobe partprobe /dev/ubdc
step blockdev-size sh -c 'test "$(blockdev --getsize64 /dev/ubdb1)" = 16777216'
step mkfs-ext4-dos mkfs.ext4 -q /dev/ubdb1
step mkfs-ext4-gpt mkfs.ext4 -q /dev/ubdc1
step mkfs-vfat mkfs.vfat -n VFAT2 /dev/ubdb2
step blkid sh -c 'blkid /dev/ubdb1 /dev/ubdb2 | grep "/dev/ubdb2: .*LABEL=\"VFAT2\".*TYPE=\"vfat\""'
mkdir -p /mnt
step mount-dos mount /dev/ubdb1 /mnt
echo hello-dos > /mnt/file
step umount-dos umount /mnt
step mount-gpt mount /dev/ubdc1 /mnt
echo hello-gpt > /mnt/file
step umount-gpt umount /mnt
step fdisk sh -c 'printf "o\nn\np\n1\n\n+8M\nn\ne\n2\n\n\nn\nl\n\n+4M\nw\n" | fdisk /dev/ubdd'
step fdisk-nodes test -e /dev/ubdd1 -a -e /dev/ubdd2 -a -e /dev/ubdd5
step parted-mklabel parted -s /dev/ubdd mklabel gpt mkpart a 1MiB 9MiB mkpart b 9MiB 20MiB
step parted-nodes sh -c 'test -e /dev/ubdd2 -a ! -e /dev/ubdd5'
step rereadpt blockdev --rereadpt /dev/ubdd
for d in /dev/ubd[bcd] /dev/ubd[bcd][0-9]*; do echo "SIZE $(( $(blockdev --getsize64 $d) / 1024 )) ${d#/dev/}"; done
lsblk /dev/ubdb 2>&1 | sed 's/^/LSBLK /'
echo PROBE-DONE
systemctl --force --force poweroff
`

// partitionSteps are the steps every run must pass.
var partitionSteps = []string{"sfdisk-dos", "sfdisk-gpt", "nodes", "fdisk-l", "parted-print", "partprobe",
	"blockdev-size", "mkfs-ext4-dos", "mkfs-ext4-gpt", "mkfs-vfat", "blkid", "mount-dos", "umount-dos",
	"mount-gpt", "umount-gpt", "fdisk", "fdisk-nodes", "parted-mklabel", "parted-nodes", "rereadpt"}

// partitionImage makes the Debian root image with the tools and the probe
// in dir.
func partitionImage(t *testing.T, dir string) string {
	t.Helper()
	testutil.Peer(t, "mke2fs", "e2fsprogs")
	root := packaging.ChrootWith(t, partitionTools)
	if err := os.WriteFile(filepath.Join(root, "probe.sh"), []byte(partitionProbe), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "debian.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "1G").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs -d: %v\n%s", err, out)
	}
	return img
}

// blankDisks makes empty 64 MiB disks named b, c, d in dir.
func blankDisks(t *testing.T, dir string, r *mountRun) map[string]string {
	t.Helper()
	disks := map[string]string{}
	for _, n := range []string{"b", "c", "d"} {
		p := filepath.Join(dir, n+".img")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 64<<20); err != nil {
			t.Fatal(err)
		}
		r.chown(p)
		disks[n] = p
	}
	return disks
}

// TestIntegrationLinuxPartitions: in a Debian guest, sfdisk writes a DOS
// table and a GPT with two partitions each, the partitions appear as
// /dev/ubdXN, mkfs.ext4, mkfs.vfat, blkid, parted, partprobe, fdisk and
// mount work on them; the host finds on each partition 1 (its window of
// the image) a clean ext4 holding the file the guest wrote; and the same
// disks booted on linux.uml show the same partitions (its boot-log listing
// and /proc/partitions against ours). As root and as the test user.
func TestIntegrationLinuxPartitions(t *testing.T) {
	requireLinuxHost(t)
	base := partitionImage(t, t.TempDir())
	keep := t.TempDir() // the root run's disks, for linux.uml
	var rootDisks map[string]string
	var rootOut string
	for _, unpriv := range []bool{false, true} {
		name := map[bool]string{false: "root", true: "user"}[unpriv]
		t.Run(name, func(t *testing.T) {
			r := newMountRun(t, unpriv)
			if !unpriv {
				r.dir = keep
			}
			img := filepath.Join(r.dir, "debian.img")
			if out, err := exec.Command("cp", "--sparse=always", base, img).CombinedOutput(); err != nil {
				t.Fatalf("copy image: %v: %s", err, out)
			}
			r.chown(img)
			disks := blankDisks(t, r.dir, r)
			start := time.Now()
			g := r.start(harness.Bin(t, "linux"), "ubd0="+img, "ubd1="+disks["b"], "ubd2="+disks["c"], "ubd3="+disks["d"],
				"init=/probe.sh", "uml_dir="+filepath.Join(r.dir, "uml"))
			if err := g.WaitOutput("PROBE-DONE", 3*time.Minute); err != nil {
				t.Fatal(err)
			}
			if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
				t.Errorf("exit after poweroff = %d, %v", code, err)
			}
			t.Logf("boot to poweroff: %v", time.Since(start).Round(time.Millisecond))
			out := g.Output()
			for _, s := range partitionSteps {
				if !regexp.MustCompile(`(?m)^OK ` + regexp.QuoteMeta(s) + `\r?$`).MatchString(out) {
					t.Errorf("step %s: %s", s, stepLine(out, s))
				}
			}
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "LSBLK ") {
					t.Logf("%s", strings.TrimSpace(l)) // lsblk needs sysfs: a difference (docs/linux.md)
				}
			}
			checkPartition(t, disks["b"], parttable.DOS, 1, "/file", "hello-dos\n")
			checkPartition(t, disks["c"], parttable.GPT, 1, "/file", "hello-gpt\n")
			os.Remove(img)
			if !unpriv {
				rootDisks, rootOut = disks, out
			}
		})
	}
	t.Run("uml", func(t *testing.T) {
		if rootDisks == nil {
			t.Skip("the root run did not finish")
		}
		harness.RealUML(t)
		dir := t.TempDir()
		script := `echo UML-PARTITIONS; grep ' ubd[bcd]' /proc/partitions; echo UML-END`
		rootfs := harness.BusyboxImage(t, dir, harness.Image{Init: script + "\npoweroff -f\n"})
		g := harness.BootRealUML(t, rootfs, "ubd1="+rootDisks["b"], "ubd2="+rootDisks["c"], "ubd3="+rootDisks["d"])
		if _, err := g.Wait(bootTimeout); err != nil {
			t.Fatalf("%v\n%s", err, g.Output())
		}
		uml := g.Output()
		// The listing: linux.uml's at boot, ours at the last scan.
		for _, d := range []string{"ubdb", "ubdc", "ubdd"} {
			want, got := lastListing(uml, d), lastListing(rootOut, d)
			if want == "" || got != want {
				t.Errorf("partition listing of %s: ours %q, linux.uml %q", d, got, want)
			}
		}
		// /proc/partitions: "#blocks name" against our sizes.
		var want, got []string
		procLine := regexp.MustCompile(`(?m)^\s*98\s+\d+\s+(\d+) (ubd[bcd]\d*)\r?$`)
		for _, m := range procLine.FindAllStringSubmatch(uml, -1) {
			want = append(want, m[1]+" "+m[2])
		}
		sizeLine := regexp.MustCompile(`(?m)^SIZE (\d+) (ubd[bcd]\d*)\r?$`)
		for _, m := range sizeLine.FindAllStringSubmatch(rootOut, -1) {
			got = append(got, m[1]+" "+m[2])
		}
		sort.Strings(want)
		sort.Strings(got)
		if len(want) == 0 || strings.Join(want, ",") != strings.Join(got, ",") {
			t.Errorf("partitions: ours %q, linux.uml's /proc/partitions %q", got, want)
		}
		t.Logf("linux.uml /proc/partitions: %q", want)
	})
}

// stepLine is the probe's line for step s (for the failure message).
func stepLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAIL "+s+" ") {
			return strings.TrimSpace(l)
		}
	}
	return "no result"
}

// lastListing returns the last partition listing line of disk d in out
// (" ubdb: ubdb1 ubdb2").
func lastListing(out, d string) string {
	var last string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.HasPrefix(l, " "+d+":") {
			last = l
		}
	}
	return last
}

// checkPartition reads the table of the host image img with parttable
// and checks its partition n (2048+32768 sectors: sfdisk's first 16M) with
// e2fsck -fn and debugfs.
func checkPartition(t *testing.T, img string, kind parttable.Kind, n int, path, want string) {
	t.Helper()
	tab, win := partitionWindow(t, img, n)
	if tab.Kind != kind || len(tab.Parts) != 2 {
		t.Fatalf("%s: table %q with %d partitions; want %q with 2", img, tab.Kind, len(tab.Parts), kind)
	}
	if p := tab.Parts[n-1]; p.Number != n || p.Start != 2048 || p.Sectors != 32768 {
		t.Errorf("%s partition %d at %d+%d; want 2048+32768 (sfdisk's 16M)", img, p.Number, p.Start, p.Sectors)
	}
	if got := checkImage(t, win, path); got != want {
		t.Errorf("%s partition %d: %s = %q; want %q", img, n, path, got, want)
	}
}

// partitionWindow reads the table of the 64 MiB host image img with
// parttable and copies partition n (its window of the image) to a file.
func partitionWindow(t *testing.T, img string, n int) (*parttable.Table, string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 64<<20 {
		t.Errorf("%s is %d bytes; want 64 MiB (nothing written beyond the disk)", img, st.Size())
	}
	tab, err := parttable.Read(f, uint64(st.Size())/parttable.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	var p *parttable.Partition
	for i := range tab.Parts {
		if tab.Parts[i].Number == n {
			p = &tab.Parts[i]
		}
	}
	if p == nil {
		t.Fatalf("%s has no partition %d: %+v", img, n, tab.Parts)
	}
	win := filepath.Join(t.TempDir(), fmt.Sprintf("%s%d.img", filepath.Base(img), n))
	out, err := os.Create(win)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, int64(p.Start)*512, int64(p.Sectors)*512))
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	return tab, win
}

// busyboxPartitions is a busybox guest's script: fdisk makes a primary
// and an extended partition with two logical ones on ubdb.
const busyboxPartitions = `printf 'o\nn\np\n1\n\n+8M\nn\ne\n2\n\n\nn\nl\n\n+8M\nn\nl\n\n\nw\n' | fdisk /dev/ubdb >/dev/null 2>&1 && echo FDISK-OK
[ -L /dev/ubdb1 ] && [ -e /dev/ubdb2 ] && [ -e /dev/ubdb5 ] && [ -e /dev/ubdb6 ] && echo NODES-OK
ls -lnL /dev/ubdb1 | sed 's/^/LS /'
[ "$(blockdev --getsize64 /dev/ubdb1)" = 8388608 ] && [ "$(blockdev --getsize64 /dev/ubdb2)" = 1024 ] && echo GETSIZE-OK
echo "BLOCKDEV $(blockdev --getss /dev/ubdb5) $(blockdev --getbsz /dev/ubdb5) $(blockdev --getro /dev/ubdb5)"
blkdiscard -o 0 -l 1048576 /dev/ubdb6 && echo BLKDISCARD-OK
partprobe /dev/ubdb && echo PARTPROBE-OK
mke2fs /dev/ubdb1 2>&1 | grep -q 'not a block device' && echo MKE2FS-NEEDS-F
mke2fs -F /dev/ubdb1 >/dev/null 2>&1 && echo MKE2FS-F-OK
mke2fs -F /dev/ubdb5 >/dev/null 2>&1 && echo MKE2FS-LOGICAL-OK
mkdosfs -n BUSYBOX /dev/ubdb6 >/dev/null && echo MKDOSFS-OK
mkdir -p /mnt
mount /dev/ubdb1 /mnt && echo busybox-data > /mnt/f && umount /mnt && echo MOUNT-OK
mount -t ext2 /dev/ubdb5 /mnt && umount /mnt && echo MOUNT-LOGICAL-OK`

// TestIntegrationLinuxPartitionsBusybox: busybox's fdisk, blockdev,
// blkdiscard, partprobe, mke2fs (with -F: busybox insists on a block
// device otherwise), mkdosfs and mount on partitions, as root and as the
// test user; the host checks partition 1.
func TestIntegrationLinuxPartitionsBusybox(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		disk := blankDisks(t, r.dir, r)["b"]
		out := r.boot(busyboxPartitions, "ubd1="+disk)
		expect(t, out, "FDISK-OK", "NODES-OK", "GETSIZE-OK", "BLOCKDEV 512 4096 0", "BLKDISCARD-OK", "PARTPROBE-OK",
			"MKE2FS-NEEDS-F", "MKE2FS-F-OK", "MKE2FS-LOGICAL-OK", "MKDOSFS-OK", "MOUNT-OK", "MOUNT-LOGICAL-OK",
			" ubdb: ubdb1 ubdb2 < ubdb5 ubdb6 >", "LS -rw-rw----    1 0        6          8388608")
		_, win := partitionWindow(t, disk, 1)
		if got := checkImage(t, win, "/f"); got != "busybox-data\n" {
			t.Errorf("/f on ubdb1 = %q", got)
		}
	})
}

// goldenDisk unpacks a golden disk of internal/parttable into dir.
func goldenDisk(t *testing.T, dir, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "internal", "parttable", "testdata", name+".img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".img")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, z); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntegrationLinuxProcPartitions: "proc partitions" over the mconsole
// answers what linux.uml's does for the same disks (a DOS table with
// logical partitions, a GPT with a hole and partitions 16-20 on major 259),
// byte for byte; a disk added with "config ubdN=" brings its partitions
// into the running guest and "remove" takes them away.
func TestIntegrationLinuxProcPartitions(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	run := debianMconsole(t)
	dir := t.TempDir()
	dos, gpt := goldenDisk(t, dir, "dos-logical"), goldenDisk(t, dir, "gpt-holes")
	extra := []string{"ubd1=" + dos, "ubd2r=" + gpt}
	real := realReplies(t, "pp-real", []string{"proc partitions"}, extra...)
	g, sock := bootForMconsole(t, "echo READY; exec sh", "pp", append([]string{"con0=fd:0,fd:1", "con=null", "ssl=null"}, extra...)...)
	sameReplies(t, run, sock, []string{"proc partitions"}, real)
	t.Logf("linux.uml's proc partitions:\n%s", real["proc partitions"])
	guest := (&guestShell{t: t, g: g}).run
	guest("ls /dev/ubdb5 /dev/ubdc20 && echo LISTED", "LISTED")
	plug := goldenDisk(t, dir, "dos-ebrgarbage")
	if out := run(sock, "config ubd3="+plug); out != "OK \n" {
		t.Fatalf("config ubd3= = %q", out)
	}
	guest("ls /dev/ubdd10 && echo PLUGGED", "PLUGGED")
	if out := run(sock, "proc partitions"); !strings.Contains(out, "  98       58          2 ubdd10\n") {
		t.Errorf("proc partitions after config ubd3=: %q", out)
	}
	if out := run(sock, "remove ubd3"); out != "OK \n" {
		t.Errorf("remove ubd3 = %q", out)
	}
	guest("ls /dev/ubdd* 2>&1 | grep -c ubdd", "0")
	run(sock, "halt")
	if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
		t.Errorf("halt: %d, %v", code, err)
	}
}
