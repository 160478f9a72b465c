package kside

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/initramfs/unpack"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// initramfs makes the machine's initial root as Linux makes its rootfs
// from initrd=: a tmpfs at dir (bounded by mem=) into which the image is
// unpacked. K unpacks it as root of the guest's user namespace, so the
// image's owners are guest ids and nothing it names can reach outside dir
// (internal/initramfs/unpack). It reports whether the rootfs has the init
// to run (rdinit=, /init); when it has not, the tmpfs is gone again and
// the root is mounted as without an initrd (Linux's prepare_namespace).
//
// Boot-log lines as linux.uml 6.1 prints them: "Trying to unpack rootfs
// image as initramfs...", "Initramfs unpacking failed: WHY" (what was
// unpacked before the fault stays, and the boot goes on), "Freeing initrd
// memory: NK".
func (k *kernel) initramfs(dir string) (bool, error) {
	ird := k.plan.Initrd
	img := k.files[plan.FDInitrd]
	opts := "mode=0755"
	if ird.TmpfsSize > 0 {
		opts += fmt.Sprintf(",size=%d", ird.TmpfsSize)
	}
	if err := unix.Mount("rootfs", dir, "tmpfs", 0, opts); err != nil {
		return false, fmt.Errorf("mount the rootfs (tmpfs) on %s: %w", dir, err)
	}
	root, err := os.Open(dir)
	if err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return false, err
	}
	defer root.Close()
	info := k.logf // the kernel's informational lines: not with quiet
	if k.plan.Quiet {
		info = func(string, ...any) {}
	}
	info("Trying to unpack rootfs image as initramfs...")
	if err := unpack.Unpack(root, img, ird.Size, unpack.Options{Logf: k.logf}); err != nil {
		k.logf("Initramfs unpacking failed: %s", err)
	}
	// UML frees the pages the image filled in its memory, but for the
	// first and last (partial) ones.
	if pages := ird.Size/4096 - 1; pages > 0 {
		info("Freeing initrd memory: %dK", pages*4)
	}
	if hasInit(root, ird.RDInit) {
		return true, nil
	}
	unix.Unmount(dir, unix.MNT_DETACH)
	return false, nil
}

// hasInit reports whether the rootfs has path to execute, as Linux checks
// rdinit= (resolved from the rootfs's root, symlinks followed inside it).
func hasInit(root *os.File, path string) bool {
	fd, err := unix.Openat2(int(root.Fd()), path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Mode&0o111 != 0
}
