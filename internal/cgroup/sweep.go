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
	for _, d := range machine {
		if pids, err := Procs(d); err != nil || len(pids) > 0 {
			// An unreadable cgroup.procs counts as live: never guess.
			r.Verdict = Live
			return r
		}
	}
	if len(guests) > 0 {
		if populated(guests) {
			if !s.Kill {
				r.Verdict = Leftovers
				return r
			}
			for _, g := range guests {
				s.killTree(g)
			}
			r.Killed = true
			deadline := time.Now().Add(killWait)
			for populated(guests) {
				if time.Now().After(deadline) {
					r.Verdict, r.Err = Leftovers, errors.New("processes survived SIGKILL")
					return r
				}
				time.Sleep(20 * time.Millisecond)
			}
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

// populated reports whether a process lives in one of the v2 cgroups dirs
// (an unreadable cgroup.events counts as populated).
func populated(dirs []string) bool {
	for _, d := range dirs {
		if p, err := Populated(d); err != nil || p {
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
