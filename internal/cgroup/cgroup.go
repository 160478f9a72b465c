// Package cgroup finds and manages the host cgroups of a `linux` machine:
// where this process sits (/proc/self/cgroup) and whether it may make
// cgroups there (this file), a transient systemd scope with Delegate=yes
// from the user's own systemd manager when it may not, as rootless
// container engines get one (scope.go), and the sweep that removes the
// machine cgroups killed instances left behind (sweep.go).
//
// A machine cgroup is a directory named Prefix+umid (or Prefix+umid-PID
// when that name is taken) that `linux` makes beside its own cgroup and
// moves itself into for its whole life: on the unified hierarchy it holds
// P and K (and on a v2-only host with mem= a nested one holding them) and
// a child "guest" with the guest's processes and the cgroups the guest
// makes; on the v1 memory hierarchy it holds every process of the machine.
// `linux` marks each machine cgroup with its pid and start time (the
// user.umlkit.linux extended attribute, with its pid and time namespaces):
// a sweep takes one whose mark names a process that is gone for a dead
// machine's, whatever still runs in it. Unmarked (older kernels), or
// marked in other namespaces, it relies on the invariant above: a machine
// cgroup with no process outside its guest subtree, older than the moment
// of its creation, is a dead machine's.
//
// Files: /proc/PID/cgroup (proc(5)); cgroup v2 interface files
// cgroup.procs, cgroup.events, cgroup.kill (Documentation/admin-guide/
// cgroup-v2.rst); the systemd D-Bus API (org.freedesktop.systemd1(5)).
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every machine cgroup.
const Prefix = "umlkit-"

// GuestDir is the name of a machine cgroup's child that holds the guest.
const GuestDir = "guest"

// ErrNoV2 is V2Mount's error when no unified hierarchy is mounted.
var ErrNoV2 = errors.New("no cgroup v2 hierarchy is mounted (/sys/fs/cgroup, /sys/fs/cgroup/unified)")

// ErrMalformed is returned for a /proc/PID/cgroup text that is not one.
var ErrMalformed = errors.New("malformed /proc/PID/cgroup")

// Membership is where a process sits: its path in the unified (v2)
// hierarchy and in each v1 hierarchy, as /proc/PID/cgroup lists them.
type Membership struct {
	V2 string            // "" when the process is in no v2 hierarchy
	V1 map[string]string // by controller ("memory") or name ("name=systemd")
}

// ParseMembership parses the text of /proc/PID/cgroup: lines of
// "ID:CONTROLLERS:PATH", the v2 one "0::PATH". Every PATH starts with '/'.
func ParseMembership(text string) (Membership, error) {
	m := Membership{V1: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(path, "/") {
			return Membership{}, fmt.Errorf("%w: line %q", ErrMalformed, line)
		}
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return Membership{}, fmt.Errorf("%w: line %q", ErrMalformed, line)
		}
		if id == "0" && ctrls == "" {
			m.V2 = path
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c != "" {
				m.V1[c] = path
			}
		}
	}
	return m, nil
}

// Self returns this process's membership.
func Self() (Membership, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Membership{}, err
	}
	return ParseMembership(string(b))
}

// V2Mount returns where the unified hierarchy is mounted: /sys/fs/cgroup
// on a unified host, /sys/fs/cgroup/unified on a hybrid one.
func V2Mount() (string, error) {
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var fs unix.Statfs_t
		if unix.Statfs(d, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			return d, nil
		}
	}
	return "", ErrNoV2
}

// V1Mount returns where the v1 hierarchy of controller is mounted.
func V1Mount(controller string) (string, error) {
	d := filepath.Join("/sys/fs/cgroup", controller)
	var fs unix.Statfs_t
	if unix.Statfs(d, &fs) == nil && fs.Type == unix.CGROUP_SUPER_MAGIC {
		return d, nil
	}
	return "", fmt.Errorf("no cgroup v1 %s hierarchy at %s", controller, d)
}

// Writable reports (nil) whether this process may make a child of the
// cgroup dir and move itself into it: write access to the directory and
// to its cgroup.procs (the common ancestor's, for cgroup v2), with its
// effective ids.
func Writable(dir string) error {
	for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs")} {
		if err := unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK, unix.AT_EACCESS); err != nil {
			return &os.PathError{Op: "access", Path: p, Err: err}
		}
	}
	return nil
}

// Procs returns the processes listed in dir/cgroup.procs (directly in
// the cgroup, not below it).
func Procs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Populated reads "populated" of a v2 cgroup's cgroup.events: whether a
// process lives in it or below it.
func Populated(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return v != "0", nil
		}
	}
	return false, fmt.Errorf("%s/cgroup.events has no populated field", dir)
}

// Kill SIGKILLs every process in the cgroup dir and below it: cgroup.kill
// (v2, Linux 5.14), else each process the cgroup.procs files list.
func Kill(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("1")
		f.Close()
		return err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		pids, _ := Procs(p)
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		return nil
	})
}
