package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/initramfs"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// initramfsInit is the initramfs's /init: it mounts the disk ubdb (the
// machine's second disk) and switches to it, as an initramfs hands over to
// the real root. devtmpfs is for linux.uml (its rootfs has no /dev
// entries); our machine already has its /dev, where the mount fails. With
// mode=pivot (a word of the command line, in init's environment) it
// switches with pivot_root, as systemd's initrd-switch-root does where the
// initramfs is not the kernel's rootfs.
const initramfsInit = `#!/bin/sh
export PATH=/bin
echo "INITRAMFS-INIT pid=$$ fs=$(stat -f -c %T /)"
[ -e /early/marker ] && echo EARLY-CPIO-UNPACKED
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t proc proc /proc 2>/dev/null
mount /dev/ubdb /newroot || { echo MOUNT-FAILED; poweroff -f; }
[ "$mode" = nomove ] || for d in dev proc; do mount --move /$d /newroot/$d 2>/dev/null; done
if [ "$mode" = pivot ]; then
  cd /newroot && mkdir -p oldroot && pivot_root . oldroot && umount -l /oldroot && exec chroot . /init
  echo PIVOT-FAILED
fi
exec switch_root /newroot /init
`

// switchedRootInit is the real root's /init after the switch (its
// prologue mounts devtmpfs on /dev, which has the machine's devices when
// the initramfs did not move its /dev along: mode=nomove). Only root may
// mount a devtmpfs, as in Linux.
const switchedRootInit = `echo "SWITCHED-ROOT pid=$$ uid=$(id -u) fs=$(grep ' / ' /proc/mounts | cut -d' ' -f3 | tail -1)"
[ -e /dev/ubdb ] && echo DEV-MOVED
su u -c 'mount -t devtmpfs none /mnt' 2>/dev/null && echo USER-MOUNTED-DEVTMPFS
unshare -Urm sh -c 'mount -t devtmpfs none /mnt' 2>/dev/null && echo USERNS-MOUNTED-DEVTMPFS
echo "$mode" > /persist; sync
poweroff -f
`

// switchedRoot is the disk the initramfs switches to, with an ordinary
// user u for the devtmpfs refusal.
var switchedRoot = harness.Image{Init: switchedRootInit, Files: map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/:/bin/sh\n",
	"etc/group":  "root:x:0:\nu:x:1000:\n",
}}

// initrdImages builds, with Debian's busybox-static, cpio and compressors,
// the test's initramfs in the formats linux.uml takes: newc uncompressed,
// gzip, xz (CRC32 check, as the kernel needs), zstd, and an uncompressed
// "early" archive, zero padding and the gzip one concatenated (what
// dracut's and initramfs-tools' microcode images look like).
func initrdImages(t *testing.T, dir string) map[string]string {
	t.Helper()
	cpio := testutil.Peer(t, "cpio", "cpio")
	gzip := testutil.Peer(t, "gzip", "gzip")
	xz := testutil.Peer(t, "xz", "xz-utils")
	zstd := testutil.Peer(t, "zstd", "zstd")
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		testutil.Skip(t, "static busybox not installed at %s (apt-get install busybox-static)", bb)
	}
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"bin", "dev", "proc", "sys", "newroot"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", bb, filepath.Join(tree, "bin/busybox")).CombinedOutput(); err != nil {
		t.Fatalf("cp busybox: %v %s", err, out)
	}
	for _, a := range []string{"sh", "mount", "umount", "mkdir", "switch_root", "pivot_root", "chroot", "echo", "cat", "stat", "poweroff"} {
		if err := os.Symlink("busybox", filepath.Join(tree, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "init"), []byte(initramfsInit), 0o755); err != nil {
		t.Fatal(err)
	}
	early := filepath.Join(dir, "early")
	os.MkdirAll(filepath.Join(early, "early"), 0o755)
	os.WriteFile(filepath.Join(early, "early/marker"), []byte("microcode\n"), 0o644)
	sh := func(script string) {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CPIO="+cpio, "GZIP_BIN="+gzip, "XZ="+xz, "ZSTD="+zstd)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	sh(`(cd tree && find . | "$CPIO" -o -H newc --quiet) > main.cpio
(cd early && find . | "$CPIO" -o -H newc --quiet) > early.cpio
"$GZIP_BIN" -9 -n -c main.cpio > main.cpio.gz
"$XZ" --check=crc32 -c main.cpio > main.cpio.xz
"$ZSTD" -q -c main.cpio > main.cpio.zst
(cat early.cpio; head -c 512 /dev/zero; cat main.cpio.gz) > concat.img
chmod 644 main.cpio* concat.img`)
	return map[string]string{
		"newc": filepath.Join(dir, "main.cpio"), "gzip": filepath.Join(dir, "main.cpio.gz"), "xz": filepath.Join(dir, "main.cpio.xz"),
		"zstd": filepath.Join(dir, "main.cpio.zst"), "concat": filepath.Join(dir, "concat.img"),
	}
}

// checkInitrdBoot checks a boot that went through the initramfs into ubdb.
func checkInitrdBoot(t *testing.T, g *harness.Guest, format, disk, wantFS string, wantDev bool) {
	t.Helper()
	code, err := g.Wait(bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	out := g.Output()
	wants := []string{"Trying to unpack rootfs image as initramfs...", "Run /init as init process", "INITRAMFS-INIT pid=1 fs=" + wantFS,
		"SWITCHED-ROOT pid=1 uid=0 fs="}
	if format == "concat" {
		wants = append(wants, "EARLY-CPIO-UNPACKED")
	}
	// The disk mounted natively (root) or through fuse2fs (a user).
	if !strings.Contains(out, " fs=ext4") && !strings.Contains(out, " fs=fuse.ext4") {
		t.Errorf("%s: the switched-to root is not the ext4 disk", format)
	}
	if wantDev {
		wants = append(wants, "DEV-MOVED")
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: console lacks %q", format, w)
		}
	}
	for _, bad := range []string{"Initramfs unpacking failed", "MOUNT-FAILED", "PIVOT-FAILED", "USER-MOUNTED-DEVTMPFS", "USERNS-MOUNTED-DEVTMPFS"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s: console has %q", format, bad)
		}
	}
	if code != 0 {
		t.Errorf("%s: exit status %d after poweroff; want 0", format, code)
	}
	if b, err := exec.Command("debugfs", "-R", "cat /persist", disk).Output(); err != nil || !strings.Contains(string(b), format) {
		t.Errorf("%s: /persist on the switched-to disk = %q, %v", format, b, err)
	}
	if t.Failed() {
		t.Logf("console:\n%s", out)
	}
}

// TestIntegrationLinuxInitrd boots a busybox initramfs (newc, gzip, xz,
// zstd, and an early archive concatenated with a compressed one) that
// mounts the second disk and switches root into it, with switch_root
// (MS_MOVE + chroot, as busybox and util-linux do) and with pivot_root
// (systemd's way where it can): on our linux as root and as an ordinary
// user, and the same images on linux.uml.
func TestIntegrationLinuxInitrd(t *testing.T) {
	requireLinuxHost(t)
	testutil.Peer(t, "debugfs", "e2fsprogs")
	linux := harness.Bin(t, "linux")
	boot := func(t *testing.T, u *harness.TestUser, dir, initrd, disk string, extra ...string) *harness.Guest {
		argv := append([]string{linux, "initrd=" + initrd, "ubd1=" + disk, "uml_dir=" + filepath.Join(dir, "uml")}, extra...)
		if u == nil {
			return harness.Start(t, nil, argv...)
		}
		return harness.StartAs(t, u, argv...)
	}
	t.Run("root", func(t *testing.T) {
		testutil.RequireRoot(t)
		dir := t.TempDir()
		imgs := initrdImages(t, dir)
		disk := harness.BusyboxImage(t, dir, switchedRoot)
		for _, f := range []string{"newc", "gzip", "xz", "zstd", "concat"} {
			checkInitrdBoot(t, boot(t, nil, dir, imgs[f], disk, "mode="+f), f, disk, "tmpfs", true)
		}
		checkInitrdBoot(t, boot(t, nil, dir, imgs["gzip"], disk, "mode=pivot"), "pivot", disk, "tmpfs", true)
		checkInitrdBoot(t, boot(t, nil, dir, imgs["gzip"], disk, "mode=nomove"), "nomove", disk, "tmpfs", true)
	})
	t.Run("user", func(t *testing.T) {
		u := harness.UnprivilegedUser(t)
		requireLinuxHostAs(t, u)
		dir := u.Dir(t)
		imgs := initrdImages(t, dir)
		disk := harness.BusyboxImage(t, dir, switchedRoot)
		u.Chown(t, disk)
		for _, f := range []string{"gzip", "concat"} {
			checkInitrdBoot(t, boot(t, u, dir, imgs[f], disk, "mode="+f), f, disk, "tmpfs", true)
		}
		checkInitrdBoot(t, boot(t, u, dir, imgs["zstd"], disk, "mode=pivot"), "pivot", disk, "tmpfs", true)
		checkInitrdBoot(t, boot(t, u, dir, imgs["gzip"], disk, "mode=nomove"), "nomove", disk, "tmpfs", true)
	})
	t.Run("linux.uml", func(t *testing.T) {
		uml := harness.RealUML(t)
		dir := t.TempDir()
		imgs := initrdImages(t, dir)
		disk := harness.BusyboxImage(t, dir, switchedRoot)
		for _, f := range []string{"xz", "zstd", "concat"} { // concat: newc and gzip
			umlDir := t.TempDir()
			g := harness.Start(t, []string{"TMPDIR=" + umlDir}, uml, "initrd="+imgs[f], "ubd1="+disk, "mem=64M", "con0=fd:0,fd:1",
				"con=null", "ssl=null", "uml_dir="+umlDir, "mode="+f)
			// UML's rootfs is a ramfs (its root= keeps it from being a
			// tmpfs); ours is a tmpfs bounded by mem= (docs/linux.md).
			checkInitrdBoot(t, g, f, disk, "ramfs", true)
		}
	})
}

// TestIntegrationLinuxInitrdFallbacks: what Linux does when the initramfs
// has no init, when rdinit= names none, and with images that are not
// initramfs images — on our linux and on linux.uml, which must agree.
func TestIntegrationLinuxInitrdFallbacks(t *testing.T) {
	requireLinuxHost(t)
	testutil.RequireRoot(t)
	dir := t.TempDir()
	imgs := initrdImages(t, dir)
	root := harness.BusyboxImage(t, dir, harness.Image{Init: `echo "REAL-ROOT-INIT pid=$$"; poweroff -f`})
	junk := filepath.Join(dir, "junk.img")
	os.WriteFile(junk, []byte(strings.Repeat("this is no initramfs\n", 300)), 0o644)
	mk := exec.Command("sh", "-c", `mkdir -p noinit/etc && echo x > noinit/etc/x && cd noinit && find . | cpio -o -H newc --quiet > ../noinit.cpio`)
	mk.Dir = dir
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make noinit.cpio: %v %s", err, out)
	}
	cases := []struct {
		name    string
		args    []string
		wants   []string
		ok      bool   // the machine powers off normally
		umlSkip string // why linux.uml is not booted for comparison
	}{
		{"image without /init: the root's init", []string{"initrd=" + filepath.Join(dir, "noinit.cpio"), "ubd0=" + root, "init=/init"},
			[]string{"Trying to unpack rootfs image as initramfs...", "Run /init as init process", "REAL-ROOT-INIT pid=1"}, true, ""},
		{"rdinit= names nothing: the root's init", []string{"initrd=" + imgs["gzip"], "rdinit=/nonexistent", "ubd0=" + root, "init=/init"},
			[]string{"Run /init as init process", "REAL-ROOT-INIT pid=1"}, true, ""},
		{"not an initramfs", []string{"initrd=" + junk, "ubd0=" + root, "init=/init"},
			[]string{"Initramfs unpacking failed: invalid magic at start of compressed archive", "REAL-ROOT-INIT pid=1"}, true, ""},
		{"missing image", []string{"initrd=" + filepath.Join(dir, "nonexistent"), "ubd0=" + root, "init=/init"},
			[]string{`Couldn't stat "` + filepath.Join(dir, "nonexistent") + `" : err = 2`, "REAL-ROOT-INIT pid=1"}, true,
			"the line is linux.uml's (docs/linux.md); one boot less"},
		{"image larger than mem=", []string{"initrd=" + imgs["newc"], "mem=1M", "ubd0=" + root, "init=/init"},
			[]string{"Kernel panic - not syncing: uml_load_file: Failed to allocate"}, false,
			"linux.uml refuses mem=1M before it gets that far (\"Too few physical memory\"); with mem=64M and a 100 MB image it prints this panic"},
	}
	linux := harness.Bin(t, "linux")
	uml := harness.RealUML(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			umlDir := t.TempDir()
			for _, who := range []string{"ours", "linux.uml"} {
				var g *harness.Guest
				if who == "ours" {
					g = harness.Start(t, nil, append([]string{linux, "uml_dir=" + umlDir}, tc.args...)...)
				} else {
					if tc.umlSkip != "" {
						continue // tc.umlSkip says why
					}
					g = harness.Start(t, []string{"TMPDIR=" + umlDir}, append([]string{uml, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null", "uml_dir=" + umlDir}, tc.args...)...)
				}
				code, err := g.Wait(bootTimeout)
				if err != nil {
					t.Fatalf("%s: %v", who, err)
				}
				out := strings.ReplaceAll(g.Output(), "\r", "")
				for _, w := range tc.wants {
					if !strings.Contains(out, w) {
						t.Errorf("%s: console lacks %q", who, w)
					}
				}
				if (code == 0) != tc.ok {
					t.Errorf("%s: exit status %d; want success %v", who, code, tc.ok)
				}
				if who == "ours" && !tc.ok && code != 134 {
					t.Errorf("ours: exit status %d after a panic; want 134 (UML's)", code)
				}
				if t.Failed() {
					t.Logf("%s console:\n%s", who, out)
				}
			}
		})
	}
}

// TestIntegrationIsolationInitrdEscape: an initramfs whose names climb out
// with "..", name absolute host paths, or go through symlinks and hard
// links to a host directory anyone may write, unpacks entirely inside the
// machine's rootfs (as in Linux, where the rootfs is the root): the host
// directory stays empty, the guest finds every file under its own root.
func TestIntegrationIsolationInitrdEscape(t *testing.T) {
	requireLinuxHost(t)
	linux := harness.Bin(t, "linux")
	for _, who := range []string{"root", "user"} {
		t.Run(who, func(t *testing.T) {
			var u *harness.TestUser
			var dir string
			if who == "root" {
				testutil.RequireRoot(t)
				dir = t.TempDir()
			} else {
				u = harness.UnprivilegedUser(t)
				requireLinuxHostAs(t, u)
				dir = u.Dir(t)
			}
			victim := filepath.Join(dir, "victim")
			if err := os.Mkdir(victim, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(victim, 0o777)
			base, err := os.ReadFile(initrdImages(t, dir)["newc"])
			if err != nil {
				t.Fatal(err)
			}
			reg := func(name, data string) []byte {
				return initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeRegular | 0o644, NLink: 1}, name, []byte(data))
			}
			sym := func(name, target string) []byte {
				return initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeSymlink | 0o777, NLink: 1}, name, []byte(target))
			}
			hard := func(name string) []byte {
				return initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeRegular | 0o644, NLink: 2, Ino: 99}, name, []byte("h"))
			}
			check := `#!/bin/sh
export PATH=/bin
for f in dotdot abs via-symlink via-up h1 h2; do [ -e "` + victim + `/$f" ] && echo "INSIDE $f"; done
poweroff -f
`
			// The victim's path exists in the rootfs too (Linux makes no
			// missing parents either).
			var evil []byte
			for p := victim; p != "/"; p = filepath.Dir(p) {
				evil = append(initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeDir | 0o755, NLink: 2}, p, nil), evil...)
			}
			for _, e := range [][]byte{
				reg(strings.Repeat("../", 20)+strings.TrimPrefix(victim, "/")+"/dotdot", "x"),
				reg(victim+"/abs", "x"),
				sym("hl", victim), reg("hl/via-symlink", "x"),
				sym("up", strings.Repeat("../", 20)), reg("up"+victim+"/via-up", "x"),
				hard(victim + "/h1"), hard("hl/h2"),
				initramfs.AppendEntry(nil, initramfs.Header{Mode: initramfs.TypeRegular | 0o755, NLink: 1}, "init", []byte(check)),
			} {
				evil = append(evil, e...)
			}
			img := filepath.Join(dir, "evil.cpio")
			if err := os.WriteFile(img, append(base, initramfs.AppendTrailer(evil)...), 0o644); err != nil {
				t.Fatal(err)
			}
			argv := []string{linux, "initrd=" + img, "uml_dir=" + filepath.Join(dir, "uml")}
			var g *harness.Guest
			if u == nil {
				g = harness.Start(t, nil, argv...)
			} else {
				g = harness.StartAs(t, u, argv...)
			}
			if code, err := g.Wait(bootTimeout); err != nil || code != 0 {
				t.Fatalf("exit %d, %v", code, err)
			}
			// The host directory is untouched; the guest has every file.
			if ents, _ := os.ReadDir(victim); len(ents) != 0 {
				t.Errorf("the initramfs wrote into the host directory %s: %v", victim, ents)
			}
			for _, f := range []string{"dotdot", "abs", "via-symlink", "via-up", "h1", "h2"} {
				if !strings.Contains(g.Output(), "INSIDE "+f) {
					t.Errorf("the guest lacks %s/%s in its rootfs", victim, f)
				}
			}
			if strings.Contains(g.Output(), "Initramfs unpacking failed") {
				t.Errorf("unpacking failed:\n%s", g.Output())
			}
		})
	}
}
