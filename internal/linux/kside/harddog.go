package kside

import (
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/watchdog"
	"golang.org/x/sys/unix"
)

// The guest's /dev/watchdog (UML's "harddog", spec/misc-tools.md §1): a pty
// slave whose master K holds. When a guest process opens it, K starts
// uml_watchdog as UML does — "-mconsole <notify socket>" with
// mconsole=notify:, else "-pid <linux's pid>" — waits for its ready byte,
// and sends it one "\n" for every write the guest makes; when the guest
// closes the device, the helper's input is closed (it then exits 0). If
// the guest stops writing for 60 s, the helper sends the HANG notification
// or interrupts linux, as with UML.

type harddog struct {
	k      *kernel
	master *os.File
	stop   chan struct{}
	done   sync.WaitGroup
}

// setupWatchdog makes /dev/watchdog (added to devices) and returns the
// functions starting and stopping its watcher.
func (k *kernel) setupWatchdog(devices map[string]string) (start, stop func(), err error) {
	ptmx := "/dev/ptmx"
	if k.cons != nil && k.cons.ptmx != "" {
		ptmx = k.cons.ptmx
	}
	master, slave, err := openPty(ptmx)
	if err != nil {
		return nil, nil, err
	}
	makeRaw(master)
	devices["watchdog"] = slave
	h := &harddog{k: k, master: master, stop: make(chan struct{})}
	start = func() {
		h.done.Add(1)
		go h.run()
	}
	stop = func() {
		close(h.stop)
		master.Close()
		h.done.Wait()
	}
	return start, stop, nil
}

// guestHasIt reports whether a guest process has the device open, or had
// it and wrote (the consoles' rule, slaveInUse).
func (h *harddog) guestHasIt() bool {
	rc, err := h.master.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(p, 0); err == nil {
			open = slaveInUse(p[0].Revents)
		}
	})
	return open
}

func (h *harddog) run() {
	defer h.done.Done()
	for {
		for !h.guestHasIt() {
			select {
			case <-h.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		h.session()
	}
}

// session serves one open of /dev/watchdog.
func (h *harddog) session() {
	helper, pings, err := h.startHelper()
	if err != nil {
		h.k.logf("%v", err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := h.master.Read(buf)
		if n > 0 && pings != nil {
			pings.Write([]byte("\n"))
		}
		if err != nil {
			break // EIO: the guest closed the device (or K is stopping)
		}
	}
	if pings != nil {
		pings.Close() // EOF: the helper exits 0
	}
	if helper != nil {
		done := make(chan struct{})
		go func() { helper.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			helper.Process.Kill()
			<-done
		}
	}
}

// startHelper runs uml_watchdog and waits for its ready byte; it returns
// the process and the helper's input (nil and UML's message on failure).
func (h *harddog) startHelper() (*exec.Cmd, *os.File, error) {
	if h.k.plan.Shifted && h.k.helper != nil {
		// Run as root, K is an id block that could neither signal P nor
		// reach the notify socket: P runs the helper (host/hosthelper.go).
		_, f, err := h.k.helper.do(plan.HostRequest{Op: plan.HostWatchdog}, nil)
		if err != nil {
			return nil, nil, err
		}
		return nil, f, nil
	}
	return watchdog.Start(os.Getppid(), h.k.plan.Notify)
}
