package porthelper

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// kernel is the process whose exit ends the session.
type kernel struct {
	pid        int  // 0: none could be named (orphaned already, or pid 1)
	socketPair bool // pid is the creator of our socket pair (SO_PEERCRED)
}

// findKernel names the kernel: the creator of the socket pair on sock
// (SO_PEERCRED; the kernel made it for in.telnetd), else the parent of our
// parent (the kernel that ran in.telnetd or the emulator).
func findKernel(sock int) kernel {
	self := os.Getpid()
	if cred, err := unix.GetsockoptUcred(sock, unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil && cred.Pid > 1 && int(cred.Pid) != self {
		return kernel{pid: int(cred.Pid), socketPair: true}
	}
	gp, err := parentOf(os.Getppid())
	if err != nil || gp <= 1 {
		return kernel{}
	}
	return kernel{pid: gp}
}

// parentOf reads the ppid of pid from /proc/PID/stat.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}

// waitEnd blocks until termFD hangs up, process kpid exits, or ctx ends.
// An fd that cannot be watched (not pollable, pid gone) is left out; with
// nothing to watch it waits for ctx like the real helper's pause().
func waitEnd(ctx context.Context, termFD, kpid int) (Reason, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return Cancelled, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return Cancelled, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(epfd), "port-helper-epoll")
	defer ep.Close()

	// EPOLLHUP and EPOLLERR are always reported; no EPOLLIN, so typing on
	// the terminal (input for the kernel) never wakes us.
	watched := 0
	if termFD >= 0 && unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, termFD, &unix.EpollEvent{Fd: int32(termFD)}) == nil {
		watched++
	}
	pidfd := -1
	if kpid > 0 {
		if fd, err := unix.PidfdOpen(kpid, 0); err == nil {
			pidfd = fd
			defer unix.Close(pidfd)
			if unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, pidfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(pidfd)}) == nil {
				watched++
			}
		} else if err == unix.ESRCH {
			return KernelExited, nil
		}
	}
	if watched == 0 {
		<-ctx.Done()
		return Cancelled, ctx.Err()
	}

	rc, err := ep.SyscallConn()
	if err != nil {
		return Cancelled, err
	}
	stop := context.AfterFunc(ctx, func() { ep.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	reason := Cancelled
	err = rc.Read(func(fd uintptr) bool {
		var evs [2]unix.EpollEvent
		n, err := unix.EpollWait(int(fd), evs[:], 0)
		if err != nil || n <= 0 {
			return false
		}
		for _, ev := range evs[:n] {
			if int(ev.Fd) == pidfd {
				reason = KernelExited
				return true
			}
			if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				reason = TerminalHangup
				return true
			}
		}
		return false
	})
	if reason != Cancelled {
		return reason, nil
	}
	if ctx.Err() != nil {
		return Cancelled, ctx.Err()
	}
	return Cancelled, fmt.Errorf("wait for the session to end: %w", err)
}
