package guest

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Defence in depth, as container runtimes do it (docs/linux.md,
// "Security"). The id map is what keeps a guest from the host: its root is
// the user who started linux, or an unprivileged subordinate uid when that
// was root, so host-wide files and sysctls (owned by host root) are out of
// reach whatever the guest mounts. On top of that G masks the /proc and
// /sys paths runtimes mask, drops capabilities a UML guest cannot use from
// the bounding set, and the seccomp filter (internal/mountemu) refuses the
// system calls a UML guest has no equivalent of.

// maskedPaths are hidden behind /dev/null (files) or an empty read-only
// tmpfs (directories), as runc's default spec masks them.
var maskedPaths = []string{
	"proc/acpi", "proc/asound", "proc/kcore", "proc/keys", "proc/latency_stats",
	"proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi",
	"sys/firmware", "sys/devices/virtual/powercap",
}

// readOnlyPaths are made read-only. /proc/sys stays writable: what in it
// is host-wide belongs to host root, which no guest uid maps to, and the
// rest (net.*, the guest's own namespaces) is the guest's to set, as under
// UML (ip_forward in a lab router).
var readOnlyPaths = []string{"proc/bus", "proc/fs", "proc/irq", "proc/sysrq-trigger"}

// maskPaths applies maskedPaths and readOnlyPaths under the new root r.
func maskPaths(r string) error {
	for _, rel := range maskedPaths {
		p := filepath.Join(r, rel)
		st, err := os.Lstat(p)
		if err != nil {
			continue // not on this host
		}
		if st.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0555")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", "/"+rel, err)
		}
	}
	for _, rel := range readOnlyPaths {
		p := filepath.Join(r, rel)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s read-only: %w", "/"+rel, err)
		}
		if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", "/"+rel, err)
		}
	}
	return nil
}

// bindViews binds K's /proc views (internal/procfuse) over their files
// under the new root r, read-only. A file this host does not have (no
// /sys) keeps nothing bound.
func bindViews(r string, views map[string]string) error {
	for rel, src := range views {
		p := filepath.Join(r, rel)
		if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the view of %s: %w", "/"+rel, err)
		}
		if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("remount the view of %s read-only: %w", "/"+rel, err)
		}
	}
	return nil
}

// DroppedCaps leave the bounding set before the guest's init runs, so no
// guest process, setuid root included, ever holds them. Each governs only
// host-wide objects (modules, raw I/O, the clock, the kernel log, LSMs,
// audit, accounting, wake alarms, perf, bpf), which a user namespace gives
// no say over anyway; UML guests have no equivalent either. CAP_SYS_BOOT
// stays (reboot(2) in the guest's pid namespace ends the guest), so does
// CAP_SYS_ADMIN (mounts in the guest's own namespaces).
var DroppedCaps = []int{
	unix.CAP_SYS_MODULE, unix.CAP_SYS_RAWIO, unix.CAP_SYS_PACCT, unix.CAP_SYS_TIME,
	unix.CAP_SYSLOG, unix.CAP_MAC_ADMIN, unix.CAP_MAC_OVERRIDE, unix.CAP_WAKE_ALARM,
	unix.CAP_BLOCK_SUSPEND, unix.CAP_AUDIT_CONTROL, unix.CAP_AUDIT_READ, unix.CAP_PERFMON,
	unix.CAP_BPF,
}

func dropBounding() error {
	for _, c := range DroppedCaps {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	// No ambient capabilities reach the guest.
	unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	return nil
}

// sealFDs marks every fd above stdio close-on-exec: what G was donated it
// uses itself or hands on by name (ExtraFiles clears the flag on the
// child's copy), and nothing else may reach the guard or the guest.
func sealFDs() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	return nil
}
