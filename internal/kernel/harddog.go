package kernel

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

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

// defaultWatchdog is where UML runs the helper from (an absolute path).
const defaultWatchdog = "/usr/bin/uml_watchdog"

// envWatchdog overrides defaultWatchdog (a umlkit addition).
const envWatchdog = "UML_WATCHDOG"

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
	path := defaultWatchdog
	if p := os.Getenv(envWatchdog); p != "" {
		path = p
	}
	args := []string{path, "-pid", strconv.Itoa(os.Getppid())}
	if n := h.k.plan.Notify; n != "" {
		args = []string{path, "-mconsole", n}
	}
	in, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	out, err := socketPair()
	if err != nil {
		in[0].Close()
		in[1].Close()
		return nil, nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: args, Stdin: in[1], Stdout: out[1], Stderr: out[1],
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	err = cmd.Start()
	in[1].Close()
	out[1].Close()
	defer out[0].Close()
	if err != nil {
		in[0].Close()
		return nil, nil, errors.New("harddog_open - run_helper failed, errno = " + strconv.Itoa(int(errnoOf(err))))
	}
	ready := make([]byte, 1)
	out[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(out[0], ready); err != nil {
		in[0].Close()
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, errors.New("harddog_open - EOF on watchdog pipe")
	}
	return cmd, in[0], nil
}

// socketPair is a stream socket pair as files (ours, the helper's).
func socketPair() ([2]*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return [2]*os.File{}, os.NewSyscallError("socketpair", err)
	}
	unix.SetNonblock(fds[0], true)
	return [2]*os.File{os.NewFile(uintptr(fds[0]), "harddog"), os.NewFile(uintptr(fds[1]), "uml_watchdog")}, nil
}

// errnoOf extracts the errno of an exec failure (ENOEXEC otherwise).
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.ENOEXEC
}
