//go:build linux

package umlnet

import (
	"errors"
	"fmt"
	"math"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/netsetup"
)

// WatchRole is the hidden first argument of the watcher: `uml_net
// __uml_net_watch`, started by the helper itself as root after it made a
// tap. Any other caller gets Debian's argument-list error.
//
// The taps uml_net makes are not persistent: they vanish when the kernel
// closes their descriptor, long after the helper exited. One watcher per
// network namespace waits for that (link notifications, and a poll every
// watchPoll), then forgets the taps that are gone, removes the proxy ARP
// entries published for their guests and, once no tap is left, puts
// ip_forward back. It holds net-<cookie>.watch locked while it runs; a second
// watcher of the same namespace exits at once. Every helper run does the
// same bookkeeping first, so a killed watcher only delays it.
const WatchRole = "__uml_net_watch"

const watchPoll = 5 * time.Second

// spawnWatcher starts the watcher of the current network namespace: root in
// all its ids (so the caller cannot signal or trace it), its own session,
// stdio on /dev/null, an empty environment and no other descriptor.
func spawnWatcher() error {
	// Descriptors the caller left open without close-on-exec must not
	// reach the watcher (a tap fd there would keep the tap alive).
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return os.NewSyscallError("close_range", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	p, err := os.StartProcess("/proc/self/exe", []string{"uml_net", WatchRole}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []*os.File{null, null, null},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}},
		},
	})
	if err != nil {
		return fmt.Errorf("start the watcher: %w", err)
	}
	return p.Release()
}

// watch is the watcher's body; it returns the exit status.
func watch(dir string, ops hostOps) int {
	s, err := openStore(dir)
	if err != nil {
		return 1
	}
	wf, err := os.OpenFile(s.watchPath(), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		s.close()
		return 1
	}
	defer wf.Close()
	if err := flock(wf, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		s.close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return 0 // another watcher has this namespace
		}
		return 1
	}
	s.close()
	done := make(chan struct{})
	defer close(done)
	events, err := netsetup.LinkEvents(done)
	if err != nil {
		events = nil // poll only
	}
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	for {
		s, err := openStore(dir)
		if err != nil {
			return 1
		}
		if s.gc(ops) {
			s.save()
		}
		if len(s.st.Taps) == 0 {
			// Unlink while the state is locked: a helper that records a
			// tap after this starts a new watcher.
			os.Remove(s.watchPath())
			s.close()
			return 0
		}
		s.close()
		select {
		case _, ok := <-events:
			if !ok {
				events = nil
			}
			// Let a burst of changes settle into one pass.
			time.Sleep(50 * time.Millisecond)
			for drained := false; !drained && events != nil; {
				select {
				case _, ok := <-events:
					if !ok {
						events = nil
					}
				default:
					drained = true
				}
			}
		case <-tick.C:
		}
	}
}
