// Package hostcheck tests, at boot, the host capabilities `linux` needs and
// turns each missing one into a one-line error that names the problem and
// the fix — never a stack trace. Standard library only (layer 0): the test
// probes in internal/testutil use the same checks.
package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Problem is a missing host capability with the fix.
type Problem struct {
	What string
	Fix  string
}

func (p *Problem) Error() string { return p.What + "; " + p.Fix }

func readTrim(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// UserNS reports why user namespaces cannot be used, or nil. procRoot is
// "/proc" except in tests.
func UserNS() *Problem { return userNS("/proc", os.Geteuid()) }

func userNS(proc string, euid int) *Problem {
	if _, err := os.Stat(proc + "/self/ns/user"); err != nil {
		return &Problem{"user namespaces are not available (kernel built without CONFIG_USER_NS)", "use a kernel with user namespace support"}
	}
	if v, ok := readTrim(proc + "/sys/user/max_user_namespaces"); ok && v == "0" {
		return &Problem{"user namespaces are disabled (user.max_user_namespaces = 0)", "run: sysctl -w user.max_user_namespaces=15000"}
	}
	if euid != 0 {
		if v, ok := readTrim(proc + "/sys/kernel/unprivileged_userns_clone"); ok && v == "0" {
			return &Problem{"unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)", "run: sysctl -w kernel.unprivileged_userns_clone=1"}
		}
		if v, ok := readTrim(proc + "/sys/kernel/apparmor_restrict_unprivileged_userns"); ok && v == "1" {
			return &Problem{"AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)", "install umlkit's AppArmor profile for linux, or run: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"}
		}
	}
	return nil
}

// FUSE reports why /dev/fuse cannot be used, or nil.
func FUSE() *Problem { return fuseAt("/dev/fuse") }

func fuseAt(path string) *Problem {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return &Problem{path + " does not exist (needed to mount the root image)", "load the fuse module: modprobe fuse"}
	}
	return &Problem{fmt.Sprintf("%s is not usable: %v (needed to mount the root image)", path, errors.Unwrap(err)), "make it mode 0666 as distributions ship it: chmod 0666 " + path}
}

// Fuse2fs finds the fuse2fs program.
func Fuse2fs() (string, error) {
	if p, err := exec.LookPath("fuse2fs"); err == nil {
		return p, nil
	}
	return fuse2fsIn([]string{"/usr/sbin/fuse2fs", "/sbin/fuse2fs", "/usr/bin/fuse2fs"})
}

func fuse2fsIn(candidates []string) (string, error) {
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", &Problem{"fuse2fs not found (needed to mount ext2/3/4 root images)", "install it: apt-get install fuse2fs"}
}

// Explain turns a failed namespace clone into a Problem where it can.
func Explain(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.EPERM || errno == syscall.ENOSPC || errno == syscall.EINVAL) {
		if p := UserNS(); p != nil {
			return p
		}
		return &Problem{fmt.Sprintf("creating the guest's namespaces failed: %v", err), "check that user namespaces are allowed for this user (sysctl user.max_user_namespaces, AppArmor)"}
	}
	return err
}
