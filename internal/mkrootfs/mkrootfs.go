// Package mkrootfs makes root filesystem images for linux (and for the real
// UML kernel): a busybox userland from the host's static busybox with an
// inittab that gives a shell on the console, or a Debian system made with
// debootstrap; the tree becomes an ext4 image through `mke2fs -d`, which
// needs no root privileges.
package mkrootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options describe the image to make.
type Options struct {
	Image   string            // output image path
	SizeMB  int               // image size (default 64 for busybox, 1024 for Debian)
	Busybox string            // static busybox binary (default /bin/busybox)
	Debian  string            // Debian suite: use debootstrap instead of busybox
	Mirror  string            // debootstrap mirror (default: apt's configured one)
	RootPW  string            // Debian root password (default "root")
	Files   map[string]string // extra files: image path -> host file to copy
	Init    string            // busybox: replace /etc/init.d/rcS's last line (tests)
	Force   bool              // overwrite an existing image
	Log     io.Writer         // progress lines (nil: silent)
}

// Busybox files: inittab runs rcS, then a login shell on the console.
var busyboxFiles = map[string]string{
	"etc/inittab": `::sysinit:/etc/init.d/rcS
tty0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
`,
	"etc/init.d/rcS": `#!/bin/sh
# umlkit busybox root: mount what the kernel did not, bring up lo.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
[ -e /dev/pts/ptmx ] || mount -t devpts devpts /dev/pts
mount -o remount,rw / 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname -F /etc/hostname
ip link set lo up 2>/dev/null
echo "umlkit busybox root: type 'poweroff -f' to halt."
`,
	"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\n",
	"etc/shadow":   "root::19000:0:99999:7:::\n",
	"etc/group":    "root:x:0:\n",
	"etc/hostname": "uml\n",
	"etc/profile":  "export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1='\\h:\\w\\$ '\n",
	"etc/fstab":    "proc /proc proc defaults 0 0\n",
}

var busyboxDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev", "tmp", "root", "mnt", "var/log", "run", "home"}

// BusyboxTree populates dir with a busybox userland. extra files (image
// path → content) override the defaults.
func BusyboxTree(dir, busybox string, extra map[string]string) error {
	if busybox == "" {
		busybox = "/bin/busybox"
	}
	list, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w (install busybox-static)", busybox, err)
	}
	for _, d := range busyboxDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	if err := copyFile(busybox, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, app := range strings.Fields(string(list)) {
		if app == "bin/busybox" {
			continue
		}
		p := filepath.Join(dir, app)
		os.MkdirAll(filepath.Dir(p), 0o755)
		rel, _ := filepath.Rel(filepath.Dir(p), filepath.Join(dir, "bin/busybox"))
		os.Remove(p)
		if err := os.Symlink(rel, p); err != nil {
			return err
		}
	}
	files := map[string]string{}
	for k, v := range busyboxFiles {
		files[k] = v
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if name == "etc/shadow" {
			mode = 0o600
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// MakeImage turns dir into an ext4 image of sizeMB at path (via a temp file
// renamed into place).
func MakeImage(ctx context.Context, dir, path string, sizeMB int) error {
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		mke2fs = "/usr/sbin/mke2fs"
		if _, err := os.Stat(mke2fs); err != nil {
			return errors.New("mke2fs not found (install e2fsprogs)")
		}
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	out, err := exec.CommandContext(ctx, mke2fs, "-q", "-F", "-t", "ext4", "-L", "umlroot", "-d", dir, tmp, fmt.Sprintf("%dM", sizeMB)).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mke2fs -d: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Make builds the image o describes.
func Make(ctx context.Context, o Options) error {
	if o.Image == "" {
		return errors.New("no image path given")
	}
	if _, err := os.Stat(o.Image); err == nil && !o.Force {
		return fmt.Errorf("%s already exists (use --force to overwrite)", o.Image)
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	tree, err := os.MkdirTemp(filepath.Dir(o.Image), ".mkrootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	size := o.SizeMB
	if o.Debian != "" {
		if size == 0 {
			size = 1024
		}
		logf("debootstrap %s into %s (this takes a few minutes)", o.Debian, tree)
		if err := debianTree(ctx, tree, o); err != nil {
			return err
		}
	} else {
		if size == 0 {
			size = 64
		}
		extra := map[string]string{}
		if o.Init != "" {
			extra["etc/init.d/rcS"] = busyboxFiles["etc/init.d/rcS"] + o.Init + "\n"
		}
		logf("busybox userland from %s", orDefault(o.Busybox, "/bin/busybox"))
		if err := BusyboxTree(tree, o.Busybox, extra); err != nil {
			return err
		}
	}
	for dst, src := range o.Files {
		p := filepath.Join(tree, strings.TrimPrefix(dst, "/"))
		os.MkdirAll(filepath.Dir(p), 0o755)
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("extra file: %w", err)
		}
		if err := copyFile(src, p, st.Mode().Perm()); err != nil {
			return fmt.Errorf("extra file %s: %w", src, err)
		}
	}
	logf("mke2fs -t ext4 -d: %s (%d MiB)", o.Image, size)
	return MakeImage(ctx, tree, o.Image, size)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// debianTree runs debootstrap (root only) and prepares the system for a
// console login: root password, hostname, fstab, getty on the console.
func debianTree(ctx context.Context, tree string, o Options) error {
	if os.Geteuid() != 0 {
		return errors.New("--debian needs root (debootstrap)")
	}
	db, err := exec.LookPath("debootstrap")
	if err != nil {
		return errors.New("debootstrap not found (install debootstrap)")
	}
	args := []string{"--variant=minbase", "--include=sysvinit-core,login,passwd,ifupdown,iproute2,procps", o.Debian, tree}
	if o.Mirror != "" {
		args = append(args, o.Mirror)
	}
	cmd := exec.CommandContext(ctx, db, args...)
	if o.Log != nil {
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s: %w", o.Debian, err)
	}
	pw := orDefault(o.RootPW, "root")
	chpw := exec.CommandContext(ctx, "chroot", tree, "chpasswd")
	chpw.Stdin = strings.NewReader("root:" + pw + "\n")
	if out, err := chpw.CombinedOutput(); err != nil {
		return fmt.Errorf("set root password: %v: %s", err, out)
	}
	files := map[string]string{
		"etc/hostname": "uml\n",
		"etc/fstab":    "/dev/ubda / ext4 defaults 0 0\nproc /proc proc defaults 0 0\n",
		"etc/inittab": `id:2:initdefault:
si::sysinit:/etc/init.d/rcS
l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2
l6:6:wait:/etc/init.d/rc 6
ca:12345:ctrlaltdel:/sbin/shutdown -t1 -a -r now
co:2345:respawn:/sbin/getty -L console 38400 linux
`,
		"etc/securetty": "console\ntty0\ntty1\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
