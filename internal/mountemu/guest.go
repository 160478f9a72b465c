package mountemu

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// guestMem is a guest process's memory (/proc/PID/mem).
type guestMem struct{ f *os.File }

func openMem(pid uint32, write bool) (*guestMem, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &guestMem{f}, nil
}

func (m *guestMem) Close() error { return m.f.Close() }

// maxString bounds a string argument (PATH_MAX; mount data is one page).
const maxString = 4096

// readString reads a NUL-terminated string at addr ("" for a NULL pointer).
func (m *guestMem) readString(addr uint64) (string, error) {
	if addr == 0 {
		return "", nil
	}
	var out []byte
	buf := make([]byte, 512)
	for len(out) < maxString {
		n := len(buf)
		if rem := 4096 - int(addr%4096); rem < n {
			n = rem // never read across a page that may not be mapped
		}
		k, err := m.f.ReadAt(buf[:n], int64(addr))
		if i := bytes.IndexByte(buf[:k], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:k]...)
		addr += uint64(k)
		if err != nil {
			return "", unix.EFAULT
		}
	}
	return "", unix.ENAMETOOLONG
}

func (m *guestMem) read(addr uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := m.f.ReadAt(b, int64(addr)); err != nil {
		return nil, unix.EFAULT
	}
	return b, nil
}

func (m *guestMem) write(addr uint64, b []byte) error {
	if _, err := m.f.WriteAt(b, int64(addr)); err != nil {
		return unix.EFAULT
	}
	return nil
}

// inGuest runs fn on the guest worker thread after it joined pid's mount
// namespace and took its root and working directory, so paths resolve
// exactly as they do for that process.
//
// The worker is one OS thread, locked for the life of the process and never
// given back: a thread that changed namespaces must not be reused by other
// goroutines, and one that exits would fire the parent-death signal of every
// child forked from it (the guest's init among them), so the usual
// throwaway thread is not an option here. Calls are serialised.
func inGuest(pid uint32, fn func() error) error { return inGuestAs(pid, nil, fn) }

// inGuestAs is inGuest with fn running under the caller's credentials c
// (asCaller) when c is not nil.
func inGuestAs(pid uint32, c *creds, fn func() error) error {
	open := func(name string, flags int) (int, error) {
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/%s", pid, name), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: fmt.Sprintf("/proc/%d/%s", pid, name), Err: err}
		}
		return fd, nil
	}
	ns, err := open("ns/mnt", unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer unix.Close(ns)
	root, err := open("root", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	cwd, err := open("cwd", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(cwd)
	done := make(chan error, 1)
	worker.once.Do(startWorker)
	worker.jobs <- func(werr error) {
		if werr != nil {
			done <- werr
			return
		}
		if err := unix.Setns(ns, unix.CLONE_NEWNS); err != nil {
			done <- os.NewSyscallError("setns mnt", err)
			return
		}
		if err := unix.Fchdir(root); err != nil {
			done <- os.NewSyscallError("fchdir root", err)
			return
		}
		if err := unix.Chroot("."); err != nil {
			done <- os.NewSyscallError("chroot", err)
			return
		}
		if err := unix.Fchdir(cwd); err != nil {
			done <- os.NewSyscallError("fchdir cwd", err)
			return
		}
		if c != nil {
			done <- asCaller(*c, fn)
			return
		}
		done <- fn()
	}
	return <-done
}

// home is the worker's way back to K's own mount namespace, root and
// working directory, so that it never keeps a guest's namespace alive.
type home struct{ ns, root, cwd int }

func (h *home) open() error {
	for _, x := range []struct {
		fd    *int
		path  string
		flags int
	}{{&h.ns, "/proc/thread-self/ns/mnt", unix.O_RDONLY}, {&h.root, "/", unix.O_PATH | unix.O_DIRECTORY}, {&h.cwd, ".", unix.O_PATH | unix.O_DIRECTORY}} {
		fd, err := unix.Open(x.path, x.flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: x.path, Err: err}
		}
		*x.fd = fd
	}
	return nil
}

func (h *home) back() error {
	if err := unix.Setns(h.ns, unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("setns back", err)
	}
	if err := unix.Fchdir(h.root); err != nil {
		return err
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	return unix.Fchdir(h.cwd)
}

// worker is the guest worker thread (see inGuest).
var worker struct {
	once sync.Once
	jobs chan func(error)
}

func startWorker() {
	worker.jobs = make(chan func(error))
	go func() {
		runtime.LockOSThread() // never unlocked, never exits
		var h home
		err := h.open()
		if err == nil {
			if err = unix.Unshare(unix.CLONE_FS); err != nil {
				err = os.NewSyscallError("unshare CLONE_FS", err)
			}
		}
		for job := range worker.jobs {
			job(err)
			if err == nil {
				if berr := h.back(); berr != nil {
					err = berr // the thread is stuck in a guest: refuse further work
				}
			}
		}
	}()
}

// takeFD duplicates fd of process pid into K (pidfd_getfd).
func takeFD(pid uint32, fd int) (*os.File, error) {
	pfd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pfd)
	nfd, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return nil, err // EBADF for a bad fd, as the kernel would say
	}
	return os.NewFile(uintptr(nfd), fmt.Sprintf("guest-fd-%d", fd)), nil
}
