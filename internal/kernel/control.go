package kernel

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The control channel is a SOCK_SEQPACKET socketpair between P and K: P
// sends one request per packet ("uname"), K answers with one packet
// beginning "ok " or "err ". Halt and reboot travel as signals instead
// (SIGUSR1, SIGUSR2) so they work even when K is busy.

func controlPair() (p, k *os.File, err error) {
	return filePair(unix.SOCK_SEQPACKET, "control-p", "control")
}

// filePair is a close-on-exec unix socket pair of type typ (SOCK_STREAM,
// SOCK_DGRAM, SOCK_SEQPACKET) as two files named a and b.
func filePair(typ int, a, b string) (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), a), os.NewFile(uintptr(fds[1]), b), nil
}

// controlClient is P's end. Requests carry a sequence number that K echoes,
// so an answer that arrives after its request timed out is recognised and
// dropped instead of being taken for the next request's.
type controlClient struct {
	mu   sync.Mutex // one request at a time
	conn net.Conn
	seq  uint64
}

// maxControlReply bounds one answer of K (a SOCK_SEQPACKET message must fit
// the socket buffer); longer texts are cut.
const maxControlReply = 128 << 10

func newControlClient(f *os.File) (*controlClient, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return &controlClient{conn: c}, nil
}

// ask sends req, with f's descriptor when f is not nil, and waits for the
// answer.
func (c *controlClient) ask(req string, f *os.File) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	var oob []byte
	if f != nil {
		oob = unix.UnixRights(int(f.Fd()))
	}
	c.seq++
	tag := strconv.FormatUint(c.seq, 10) + " "
	if _, _, err := c.conn.(*net.UnixConn).WriteMsgUnix([]byte(tag+req), oob, nil); err != nil {
		return "", fmt.Errorf("kernel control: %w", err)
	}
	buf := make([]byte, maxControlReply+64)
	var resp string
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return "", fmt.Errorf("kernel control: %w", err)
		}
		if r, ok := strings.CutPrefix(string(buf[:n]), tag); ok {
			resp = r
			break
		}
	}
	if rest, ok := strings.CutPrefix(resp, "ok "); ok {
		return rest, nil
	}
	return "", fmt.Errorf("%s", strings.TrimPrefix(resp, "err "))
}

func (c *controlClient) Close() error { return c.conn.Close() }

// serveControl is K's end: it answers requests until the peer closes.
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
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return
		}
		var f *os.File
		if fds := rights(oob[:oobn]); len(fds) > 0 {
			f = os.NewFile(uintptr(fds[0]), "control-fd")
			for _, fd := range fds[1:] {
				unix.Close(fd)
			}
		}
		tag, req, _ := strings.Cut(string(buf[:n]), " ")
		resp := k.control(req, f)
		if f != nil && !strings.HasPrefix(resp, "ok ") {
			f.Close()
		}
		if len(resp) > maxControlReply {
			resp = resp[:maxControlReply]
		}
		conn.Write([]byte(tag + " " + resp))
	}
}

// rights returns the descriptors of SCM_RIGHTS messages in oob, marked
// close-on-exec.
func rights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range got {
				unix.CloseOnExec(fd)
			}
			fds = append(fds, got...)
		}
	}
	return fds
}

// control serves one request; f is the descriptor that came with it (the
// request takes it over when it answers "ok ").
func (k *kernel) control(req string, f *os.File) string {
	cmd, arg, _ := strings.Cut(req, " ")
	init := int(k.guestPid.Load())
	if cmd != "uname" && init == 0 {
		return "err the guest is not running"
	}
	switch cmd {
	case "cad":
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
		return "ok "
	case "stop", "go":
		sig := unix.SIGSTOP
		if cmd == "go" {
			sig = unix.SIGCONT
		}
		for _, pid := range guestProcs(init) {
			unix.Kill(pid, sig)
		}
		return "ok "
	case "ubd-add":
		var d Disk
		if err := json.Unmarshal([]byte(arg), &d); err != nil {
			return "err bad ubd-add request: " + err.Error()
		}
		if err := k.ubdAdd(d, init); err != nil {
			return "err " + err.Error()
		}
		return "ok "
	case "eth-add":
		var e EthPlan
		if err := json.Unmarshal([]byte(arg), &e); err != nil {
			return "err bad eth-add request: " + err.Error()
		}
		if err := k.addEth(e, f); err != nil {
			return "err " + err.Error()
		}
		return "ok "
	case "eth-remove":
		unit, err := strconv.Atoi(arg)
		if err != nil {
			return "err bad eth-remove request"
		}
		if err := k.removeEth(unit); err != nil {
			return "err " + err.Error()
		}
		return "ok "
	case "ubd-remove":
		unit, err := strconv.Atoi(arg)
		if err != nil {
			return "err bad ubd-remove request"
		}
		if err := k.ubdRemove(unit, init); err != nil {
			return "err " + err.Error()
		}
		return "ok "
	case "sysrq":
		return "ok " + k.sysrq(arg[0], init)
	case "stack":
		pid, err := strconv.Atoi(arg)
		if err != nil {
			return "err Please specify a pid"
		}
		text, ok := stackReport(init, pid)
		if !ok {
			return "err Couldn't find that pid"
		}
		return "ok " + text
	case "proc":
		pf, err := os.Open(fmt.Sprintf("/proc/%d/root/proc/%s", init, strings.TrimLeft(arg, " ")))
		if err != nil {
			return "err Failed to open file"
		}
		defer pf.Close()
		b, err := io.ReadAll(io.LimitReader(pf, maxControlReply))
		if err != nil {
			return "err Read of file failed" // a directory, for one
		}
		return "ok " + string(b)
	case "line": // a console or serial line's config answer (console.go)
		return "ok " + k.lineConfig(strings.TrimSpace(arg))
	case "lineset": // config conN=SPEC / remove conN (console.go)
		return "ok " + k.lineSet(strings.TrimSpace(arg))
	case "uname":
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return "err " + err.Error()
		}
		f := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
		return fmt.Sprintf("ok %s %s %s %s %s", f(u.Sysname[:]), f(u.Nodename[:]), f(u.Release[:]), f(u.Version[:]), f(u.Machine[:]))
	}
	return "err unknown control request " + fmt.Sprintf("%q", cmd)
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
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(c), "[umlkit-guard]") {
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
