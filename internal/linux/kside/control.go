package kside

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"golang.org/x/sys/unix"
)

// K's end of the control channel (plan/control.go): it answers P's
// requests one at a time until P closes its end.

// serveControl answers requests until the peer closes.
func (k *kernel) serveControl(f *os.File) {
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return
	}
	for {
		msg, files, _, err := fdpass.Recv(uc, plan.MaxMessage, plan.MaxRequestFDs)
		if err != nil && !errors.Is(err, fdpass.ErrNoFD) {
			return
		}
		if len(msg) == 0 && len(files) == 0 {
			return // P closed its end
		}
		req, err := plan.UnmarshalRequest(msg)
		var text string
		if err == nil {
			text, err = k.control(req, files)
		} else if req == nil {
			req = &plan.Request{}
		}
		if err != nil {
			for _, f := range files {
				f.Close() // a request that fails does not keep its descriptors
			}
		}
		rep := plan.ReplyTo(req, text, err)
		b, merr := plan.MarshalReply(&rep)
		if merr != nil {
			rep = plan.ReplyTo(req, "", merr)
			b, _ = plan.MarshalReply(&rep)
		}
		uc.Write(b)
	}
}

// control serves one request; files are the descriptors that came with
// it (the request takes them over when it succeeds).
func (k *kernel) control(req *plan.Request, files []*os.File) (string, error) {
	init := int(k.guestPid.Load())
	if req.Op != plan.OpUname && init == 0 {
		return "", plan.Errorf(plan.CodeNotRunning, "the guest is not running")
	}
	switch req.Op {
	case plan.OpCAD:
		// Ctrl-Alt-Del. Linux restarts at once unless init turned C-A-D
		// off (busybox init, sysvinit and systemd do, and get SIGINT). A
		// pid namespace cannot tell which, so: an init named init or
		// systemd gets SIGINT, anything else (a shell script) restarts.
		if isRealInit(init) {
			unix.Kill(init, unix.SIGINT)
		} else {
			k.logf("reboot: Restarting system")
			unix.Kill(os.Getpid(), unix.SIGUSR2)
		}
		return "", nil
	case plan.OpStop, plan.OpGo:
		sig := unix.SIGSTOP
		if req.Op == plan.OpGo {
			sig = unix.SIGCONT
		}
		for _, pid := range guestProcs(init) {
			unix.Kill(pid, sig)
		}
		return "", nil
	case plan.OpUbdAdd:
		return "", k.ubdAdd(*req.Disk, init)
	case plan.OpUbdRemove:
		return "", k.ubdRemove(req.Unit, init)
	case plan.OpEthAdd:
		var f, rx *os.File
		if len(files) > 0 {
			f = files[0]
		}
		if len(files) > 1 {
			rx = files[1]
		}
		return "", k.addEth(*req.Eth, f, rx)
	case plan.OpEthRemove:
		return "", k.removeEth(req.Arg)
	case plan.OpSysrq:
		return k.sysrq(req.Arg[0], init), nil
	case plan.OpStack:
		text, ok := stackReport(init, req.Pid)
		if !ok {
			return "", plan.Errorf(plan.CodeNotFound, "Couldn't find that pid")
		}
		return text, nil
	case plan.OpProc:
		if strings.TrimSpace(req.Arg) == "partitions" {
			// The guest's /proc is the host kernel's; UML's lists its
			// own disks, and so does this answer.
			return string(k.procPartitions()), nil
		}
		pf, err := os.Open(fmt.Sprintf("/proc/%d/root/proc/%s", init, strings.TrimLeft(req.Arg, " ")))
		if err != nil {
			return "", plan.Errorf(plan.CodeNotFound, "Failed to open file")
		}
		defer pf.Close()
		b, err := io.ReadAll(io.LimitReader(pf, plan.MaxReplyText))
		if err != nil {
			return "", plan.Errorf(plan.CodeUnreadable, "Read of file failed") // a directory, for one
		}
		return string(b), nil
	case plan.OpLine: // a console or serial line's config answer (console_k.go)
		return k.lineConfig(strings.TrimSpace(req.Arg)), nil
	case plan.OpLineSet: // config conN=SPEC / remove conN (console_k.go)
		return "", k.lineSet(strings.TrimSpace(req.Arg), req.Spec)
	case plan.OpUname:
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return "", err
		}
		f := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
		return fmt.Sprintf("%s %s %s %s %s", f(u.Sysname[:]), f(u.Nodename[:]), f(u.Release[:]), f(u.Version[:]), f(u.Machine[:])), nil
	}
	return "", plan.Errorf(plan.CodeBadRequest, "unknown control request %q", string(req.Op))
}

// guestProcs lists the host pids of the processes in the pid namespace of
// init, except the guard (which must stay able to power the guest off).
func guestProcs(init int) []int {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid_for_children", init))
	if err != nil {
		ns, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
		if err != nil {
			return nil
		}
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || l != ns {
			continue
		}
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(c), plan.GuardArgv0) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// isRealInit reports whether the guest's init looks like an init system
// (argv[0] named init or systemd, or sysvinit's "init [N]").
func isRealInit(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	base := argv0[strings.LastIndexByte(argv0, '/')+1:]
	return base == "init" || base == "systemd" || strings.HasPrefix(base, "init ")
}
