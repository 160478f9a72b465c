package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MinAge is how old a machine cgroup must be before a sweep may take it
// for a dead machine's: a live machine's is empty only between its mkdir
// and the move of `linux` into it, a few microseconds.
const MinAge = 10 * time.Second

// killWait bounds the wait for killed processes to leave their cgroups.
const killWait = 3 * time.Second

// Verdict is what a sweep made of one machine cgroup.
type Verdict int

const (
	// Removed: it was a dead machine's and is gone.
	Removed Verdict = iota
	// NotOurs: not a directory, owned by another user, or not shaped like
	// a machine cgroup.
	NotOurs
	// Young: made less than MinAge ago (a machine may be starting).
	Young
	// Live: `linux` (or its K) still runs in it.
	Live
	// Leftovers: a dead machine's, but guest processes still run in it
	// and the sweep may not kill them (or they did not die).
	Leftovers
	// Failed: a dead machine's, but it could not be removed.
	Failed
)

func (v Verdict) String() string {
	switch v {
	case Removed:
		return "removed"
	case NotOurs:
		return "not ours"
	case Young:
		return "young"
	case Live:
		return "live"
	case Leftovers:
		return "processes left"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Result is the outcome for one machine cgroup.
type Result struct {
	Path    string
	Verdict Verdict
	Killed  bool  // the processes a dead machine's guest left were killed
	Err     error // why a dead machine's cgroup is still there
}

// A Sweeper removes the cgroups of machines that are gone. Every method
// leaves alone a cgroup that is not owned by UID, not shaped like a
// machine cgroup (isMachine), younger than MinAge, or in which a process
// of `linux` lives; it removes the rest depth
// first (a guest's systemd makes its own cgroups below guest/), after
// killing the processes a dead machine's guest left where Kill allows it.
// On a v1 hierarchy, where guest processes share the machine cgroup with
// `linux`, only cgroups without any process go.
type Sweeper struct {
	UID    int           // owner of the cgroups that may go
	MinAge time.Duration // see the package constant MinAge
	Kill   bool          // kill what a dead machine's guest left (v2)

	// for tests
	now   func() time.Time
	rmdir func(string) error
	kill  func(string) error
}

func (s *Sweeper) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *Sweeper) rm(dir string) error {
	if s.rmdir != nil {
		return s.rmdir(dir)
	}
	return syscall.Rmdir(dir)
}

func (s *Sweeper) killTree(dir string) error {
	if s.kill != nil {
		return s.kill(dir)
	}
	return Kill(dir)
}

// Children sweeps the machine cgroups directly below parent (where
// `linux` makes them, beside its own cgroup). It reports every machine
// cgroup it looked at.
func (s *Sweeper) Children(parent string, v2 bool) []Result {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var rs []Result
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), Prefix) {
			rs = append(rs, s.One(filepath.Join(parent, e.Name()), v2))
		}
	}
	return rs
}

// Tree sweeps the machine cgroups anywhere below root (a hierarchy's
// mount point), wherever `linux` was started from. It does not descend
// into machine cgroups: what a guest made there is the guest's.
func (s *Sweeper) Tree(root string, v2 bool) []Result {
	var rs []Result
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if strings.HasPrefix(e.Name(), Prefix) {
				rs = append(rs, s.One(p, v2))
			} else {
				walk(p)
			}
		}
	}
	walk(root)
	return rs
}

// One sweeps the machine cgroup dir.
func (s *Sweeper) One(dir string, v2 bool) Result {
	r := Result{Path: dir}
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() {
		r.Verdict = NotOurs
		return r
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != s.UID {
		r.Verdict = NotOurs
		return r
	}
	if !isMachine(dir, v2) {
		r.Verdict = NotOurs
		return r
	}
	if s.clock().Sub(st.ModTime()) < s.MinAge {
		r.Verdict = Young
		return r
	}
	machine, guests := split(dir, v2)
	suspects := guests // where a dead machine's leftovers may run
	switch alive, known := OwnerAlive(dir); {
	case known && alive:
		r.Verdict = Live
		return r
	case known:
		// Its linux is gone: whatever still runs in it is a leftover (the
		// guest, a fuse2fs of a guest mount, ...).
		suspects = []string{dir}
	default: // made by a linux that marks nothing: its own cgroups must be empty
		for _, d := range machine {
			if pids, err := Procs(d); err != nil || len(pids) > 0 {
				// An unreadable cgroup.procs counts as live: never guess.
				r.Verdict = Live
				return r
			}
		}
	}
	if busy(suspects, v2) {
		if !s.Kill {
			r.Verdict = Leftovers
			return r
		}
		for _, d := range suspects {
			s.killTree(d)
		}
		r.Killed = true
		deadline := time.Now().Add(killWait)
		for busy(suspects, v2) {
			if time.Now().After(deadline) {
				r.Verdict, r.Err = Leftovers, errors.New("processes survived SIGKILL")
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := s.removeTree(dir); err != nil {
		r.Verdict, r.Err = Failed, err
		return r
	}
	r.Verdict = Removed
	return r
}

// isMachine reports whether dir has the shape of a machine cgroup, beside
// its name: on v2 a guest/ child (the freezer's) or a nested machine
// cgroup (a v2 memory cgroup holding the freezer's), on the v1 memory
// hierarchy a memory limit (mem=). A cgroup someone else named umlkit-*
// is left alone.
func isMachine(dir string, v2 bool) bool {
	if !v2 {
		b, err := os.ReadFile(filepath.Join(dir, "memory.limit_in_bytes"))
		if err != nil {
			return false
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return err == nil && n < 1<<62 // unlimited reads 0x7ffffffffffff000
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && (e.Name() == GuestDir || strings.HasPrefix(e.Name(), Prefix)) {
			return true
		}
	}
	return false
}

// ownerXattr is the extended attribute in which linux marks each machine
// cgroup it makes: its pid and start time, and the pid and time
// namespaces they are read in.
const ownerXattr = "user.umlkit.linux"

// Owner identifies the linux that made a machine cgroup.
type Owner struct {
	Pid    int
	Start  uint64 // clock ticks after boot, as /proc/PID/stat says
	PidNS  uint64 // inode of the pid namespace the pid is in
	TimeNS uint64 // inode of the time namespace the start is read in (0: none)
}

// String is the mark's text: "PID START PIDNS TIMENS".
func (o Owner) String() string {
	return fmt.Sprintf("%d %d %d %d", o.Pid, o.Start, o.PidNS, o.TimeNS)
}

// ParseOwner parses Owner.String's text.
func ParseOwner(v string) (Owner, bool) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return Owner{}, false
	}
	var o Owner
	var errs [4]error
	o.Pid, errs[0] = strconv.Atoi(f[0])
	o.Start, errs[1] = strconv.ParseUint(f[1], 10, 64)
	o.PidNS, errs[2] = strconv.ParseUint(f[2], 10, 64)
	o.TimeNS, errs[3] = strconv.ParseUint(f[3], 10, 64)
	if errors.Join(errs[:]...) != nil || o.Pid <= 0 {
		return Owner{}, false
	}
	return o, true
}

// nsInode returns the inode of this process's namespace kind ("pid",
// "time"), 0 where the kernel has none.
func nsInode(kind string) uint64 {
	st, err := os.Stat("/proc/self/ns/" + kind)
	if err != nil {
		return 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino
	}
	return 0
}

// self is this process as an Owner.
func self() (Owner, error) {
	start, err := StartTime(os.Getpid())
	if err != nil {
		return Owner{}, err
	}
	return Owner{Pid: os.Getpid(), Start: start, PidNS: nsInode("pid"), TimeNS: nsInode("time")}, nil
}

// MarkOwner marks the machine cgroup dir as this process's (cgroup v2 has
// user.* extended attributes since Linux 5.7; where the mark cannot be
// made, the sweep judges by the processes in the cgroup instead).
func MarkOwner(dir string) error {
	o, err := self()
	if err != nil {
		return err
	}
	if err := unix.Setxattr(dir, ownerXattr, []byte(o.String()), 0); err != nil {
		return &os.PathError{Op: "setxattr " + ownerXattr, Path: dir, Err: err}
	}
	return nil
}

// OwnerAlive reads the mark of MarkOwner on dir: known is false without
// one, and when it was made in other pid or time namespaces than this
// process's (its pid and start time mean nothing here); alive tells
// whether the process that made it still runs (the same pid with the same
// start time).
func OwnerAlive(dir string) (alive, known bool) {
	b := make([]byte, 128)
	n, err := unix.Getxattr(dir, ownerXattr, b)
	if err != nil || n <= 0 {
		return false, false
	}
	o, ok := ParseOwner(string(b[:n]))
	if !ok {
		return false, false
	}
	me, err := self()
	if err != nil || o.PidNS != me.PidNS || o.TimeNS != me.TimeNS {
		return false, false
	}
	now, err := StartTime(o.Pid)
	return err == nil && now == o.Start, true
}

// StartTime returns when process pid started, in clock ticks after boot
// (field 22 of /proc/PID/stat).
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatStartTime(string(b))
}

// ParseStatStartTime returns field 22 (starttime) of a /proc/PID/stat
// text. The second field, the command in parentheses, may itself hold
// spaces and parentheses: the fields after it follow the last ')'.
func ParseStatStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command field")
	}
	f := strings.Fields(stat[i+1:]) // fields 3...
	if len(f) < 20 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// split lists the machine's own cgroups (where `linux` lives: every
// directory of the tree outside the guest subtrees; on v1 the whole tree)
// and the roots of its guest subtrees (v2).
func split(dir string, v2 bool) (machine, guests []string) {
	var walk func(d string)
	walk = func(d string) {
		machine = append(machine, d)
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			p := filepath.Join(d, e.Name())
			if v2 && e.Name() == GuestDir {
				guests = append(guests, p)
				continue
			}
			walk(p)
		}
	}
	walk(dir)
	return machine, guests
}

// busy reports whether a process lives in one of the cgroups dirs or below
// them (an unreadable cgroup.events or cgroup.procs counts as busy).
func busy(dirs []string, v2 bool) bool {
	for _, d := range dirs {
		if v2 {
			if p, err := Populated(d); err != nil || p {
				return true
			}
			continue
		}
		found := false
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			if pids, err := Procs(p); err != nil || len(pids) > 0 {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		if found {
			return true
		}
	}
	return false
}

// removeTree removes dir and every cgroup below it, children first. The
// error is dir's own.
func (s *Sweeper) removeTree(dir string) error {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			s.removeTree(filepath.Join(dir, e.Name()))
		}
	}
	if err := s.rm(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}
