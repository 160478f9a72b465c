package kside

// K's side of the consoles and serial lines: see console.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/umlkit/umlkit/internal/chanspec"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/portchan"
)

// ---------------------------------------------------------------- K side

// consoles is K's line layer.
type consoles struct {
	k     *kernel
	plan  plan.Consoles
	files map[string]*os.File
	ports map[int]*portchan.Port
	ptmx  string // the private devpts instance's ptmx, or /dev/ptmx
	lines []*line

	con0Desc  string   // the console's config answer once open (non-default con0)
	conIn     *os.File // the console's host input, for its window size (or nil)
	conMaster *os.File // the console pty's master

	stop    chan struct{} // closed by shutdown: the watcher ends
	watchWG sync.WaitGroup
}

type lineState int

const (
	lineClosed  lineState = iota
	lineOpening           // waiting for a port connection or an xterm
	lineOpen
)

// line is one guest tty other than the console.
type line struct {
	cs     *consoles
	plan   plan.Line
	pair   chanspec.Pair
	master *os.File
	mfd    int
	slave  string

	mu      sync.Mutex
	state   lineState
	cancel  context.CancelFunc // ends an opening
	in      *endpoint
	out     *endpoint
	desc    string         // the config answer while open
	pumps   sync.WaitGroup // the host->guest pump
	outEnd  chan struct{}  // closed when the guest->host pump ended
	closing bool           // close is closing the channels (no hangup then)
}

// endpoint is an open host channel.
type endpoint struct {
	r     *os.File  // input, nil: never data
	w     io.Writer // output
	close func()
	desc  string
}

// watchInterval is how often the masters of closed lines are polled.
const watchInterval = 100 * time.Millisecond

// newConsoles makes the lines of the plan; nil when the plan has none.
func newConsoles(k *kernel, cp plan.Consoles, files map[string]*os.File) *consoles {
	if len(cp.Lines) == 0 {
		return nil
	}
	return &consoles{k: k, plan: cp, files: files, ports: map[int]*portchan.Port{}, stop: make(chan struct{})}
}

func (cs *consoles) logf(format string, args ...any) { cs.k.logf(format, args...) }

// announce logs a KERN_INFO line (hidden by quiet).
func (cs *consoles) announce(format string, args ...any) {
	if !cs.plan.Quiet {
		cs.k.logf(format, args...)
	}
}

// con0Spec is the console's spec, "" when it is the default.
func (cs *consoles) con0Spec() string {
	if cs == nil {
		return ""
	}
	for _, l := range cs.plan.Lines {
		if !l.Serial && l.N == 0 && l.Spec != chanspec.DefaultCon0 {
			return l.Spec
		}
	}
	return ""
}

// setup creates the lines' ptys (in a private devpts instance mounted
// under workDir; the host's /dev/ptmx when workDir is "") and adds their slaves to
// devices (guest /dev name -> host path). It prints the parse failures.
func (cs *consoles) setup(workDir string, devices map[string]string) error {
	cs.ptmx = "/dev/ptmx"
	pts := filepath.Join(workDir, "pts")
	if workDir == "" {
		// no private devpts instance (tests)
	} else if err := os.Mkdir(pts, 0o755); err == nil {
		if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err == nil {
			cs.ptmx = filepath.Join(pts, "ptmx")
		}
	}
	for _, port := range cs.plan.Ports {
		f := cs.files[fmt.Sprintf("port-%d", port)]
		if f == nil {
			continue
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			cs.logf("port_init : %v", err)
			continue
		}
		p, err := portchan.ListenPort(portchan.PortConfig{Listener: ln.(*net.TCPListener), Log: func(s string) { cs.logf("%s", s) }})
		if err != nil {
			cs.logf("port_init : %v", err)
			continue
		}
		cs.ports[port] = p
	}
	for _, lp := range cs.plan.Lines {
		if chanspec.IsNone(lp.Spec) {
			cs.logf("setup_one_line failed for device %d : configured as 'none'", lp.N)
			continue
		}
		pair, err := chanspec.Parse(lp.Spec)
		if err != nil {
			var pe *chanspec.Error
			if errors.As(err, &pe) && pe.Msg != "" {
				cs.logf("%s", pe.Msg)
			}
			cs.logf("setup_one_line failed for device %d : %v", lp.N, chanspec.ErrParse)
			continue
		}
		if !lp.Serial && lp.N == 0 {
			continue // the console: kside.go's pty (openConsole)
		}
		master, slave, err := openPty(cs.ptmx)
		if err != nil {
			return fmt.Errorf("%s: %w", lp.Name(), err)
		}
		l := &line{cs: cs, plan: lp, pair: pair, master: master, slave: slave}
		rc, err := master.SyscallConn()
		if err != nil {
			master.Close()
			return err
		}
		rc.Control(func(fd uintptr) { l.mfd = int(fd) })
		cs.lines = append(cs.lines, l)
		if lp.Serial {
			devices[fmt.Sprintf("ttyS%d", lp.N)] = slave
		} else {
			devices[fmt.Sprintf("tty%d", lp.N)] = slave
		}
	}
	return nil
}

// start begins watching the lines for guest opens.
func (cs *consoles) start() {
	cs.watchWG.Add(1)
	go cs.watch()
}

// shutdown drains the open lines (until EIO: the guest is gone), stops the
// watcher and closes everything.
func (cs *consoles) shutdown() {
	close(cs.stop)
	cs.watchWG.Wait()
	// Output a guest process left since the last tick still goes out
	// (except to a port or xterm that has no terminal yet).
	cs.pollOnce()
	deadline := time.Now().Add(2 * time.Second)
	for _, l := range cs.lines {
		for time.Now().Before(deadline) {
			l.mu.Lock()
			end, st := l.outEnd, l.state
			if st == lineOpening && l.cancel != nil {
				l.cancel()
			}
			l.mu.Unlock()
			if st == lineClosed {
				break
			}
			if st == lineOpen && end != nil {
				select {
				case <-end:
				case <-time.After(time.Until(deadline)):
				}
				continue
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, l := range cs.lines {
		l.close()
		l.master.Close()
	}
	for _, p := range cs.ports {
		p.Close()
	}
}

// watch polls the masters of lines no guest process has open; a master
// without POLLHUP means the guest opened the line.
func (cs *consoles) watch() {
	defer cs.watchWG.Done()
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		cs.pollOnce()
		cs.followWinsize()
		select {
		case <-cs.stop:
			return
		case <-t.C:
		}
	}
}

// pollOnce polls the masters of the lines that are not open.
func (cs *consoles) pollOnce() {
	var fds []unix.PollFd
	var which []*line
	for _, l := range cs.lines {
		l.mu.Lock()
		if l.state != lineOpen {
			fds = append(fds, unix.PollFd{Fd: int32(l.mfd), Events: unix.POLLIN})
			which = append(which, l)
		}
		l.mu.Unlock()
	}
	if len(fds) == 0 {
		return
	}
	if _, err := unix.Poll(fds, 0); err != nil {
		return
	}
	for i, l := range which {
		l.observe(slaveInUse(fds[i].Revents))
	}
}

// slaveInUse reads the poll(POLLIN) result of a pty master: no POLLHUP
// means a guest process has the slave open; POLLIN means one had it open
// and wrote (a short-lived writer a 100 ms tick missed).
func slaveInUse(revents int16) bool {
	return revents&(unix.POLLHUP|unix.POLLIN) != unix.POLLHUP
}

// followWinsize copies window size changes of the host terminals (the
// console's input and the open lines' inputs) to the guest's lines. UML
// watches SIGWINCH in a helper thread; a poll on the watcher's tick reaches
// every channel type (a pts or telnet terminal sends no signal to K).
func (cs *consoles) followWinsize() {
	if cs.conIn != nil && cs.conMaster != nil {
		setWinsize(cs.conIn, cs.conMaster)
	}
	for _, l := range cs.lines {
		l.mu.Lock()
		var in *os.File
		if l.state == lineOpen && l.in != nil {
			in = l.in.r
		}
		if in != nil {
			setWinsize(in, l.master)
		}
		l.mu.Unlock()
	}
}

// observe handles the polled state of a line that is not open: guestHasIt
// says a guest process has it open or left output in it.
func (l *line) observe(guestHasIt bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.state == lineClosed && guestHasIt:
		l.state = lineOpening
		ctx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		go l.open(ctx)
	case l.state == lineOpening && !guestHasIt:
		l.cancel() // the guest gave up before the terminal came
	}
}

// open opens the host channels (waiting for a port connection or an xterm)
// and starts the pumps.
func (l *line) open(ctx context.Context) {
	in, out, err := l.cs.openPair(ctx, l.plan, l.pair)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancel = nil
	if err != nil {
		if ctx.Err() == nil && err.Error() != "" {
			l.cs.logf("%s", err)
		}
		// Like a line whose open failed: nothing reaches the host. The
		// guest's output is discarded until it closes the line.
		in, out = &endpoint{w: io.Discard, close: func() {}}, nil
	}
	if out == nil {
		out = in
	}
	l.in, l.out = in, out
	l.desc = in.desc
	if l.pair.Split && err == nil {
		l.desc = in.desc + "," + out.desc
	}
	l.state = lineOpen
	if in.r != nil {
		setWinsize(in.r, l.master)
		l.pumps.Add(1)
		go func() { // host -> guest
			defer l.pumps.Done()
			io.Copy(l.master, in.r)
			l.mu.Lock()
			closing := l.closing
			l.mu.Unlock()
			if !closing {
				l.hangup() // EOF on the input channel (a telnet client left)
			}
		}()
	}
	l.outEnd = make(chan struct{})
	go l.pumpOut(out.w, l.outEnd)
}

// pumpOut copies the guest's output to w until the master reads EIO (no
// guest process has the line open any more), then closes the line.
func (l *line) pumpOut(w io.Writer, end chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.master.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	close(end)
	l.close()
}

// hangup is what UML does at EOF on a line's input channel, as far as a
// pty master can: SIGHUP and SIGCONT to the session and the foreground
// process group that have the guest's tty as controlling terminal (the
// master reports them for its slave). The guest's shell or getty exits, the
// line closes, and a respawned getty opens it for the next connection.
func (l *line) hangup() {
	rc, err := l.master.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if pgrp, err := unix.IoctlGetInt(int(fd), unix.TIOCGPGRP); err == nil && pgrp > 1 {
			unix.Kill(-pgrp, unix.SIGHUP)
			unix.Kill(-pgrp, unix.SIGCONT)
		}
		if sid, err := unix.IoctlGetInt(int(fd), unix.TIOCGSID); err == nil && sid > 1 {
			unix.Kill(sid, unix.SIGHUP)
			unix.Kill(sid, unix.SIGCONT)
		}
	})
}

// close closes the host channels of an open line.
func (l *line) close() {
	l.mu.Lock()
	in, out := l.in, l.out
	l.in, l.out = nil, nil
	l.closing = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.closing = false
		l.mu.Unlock()
	}()
	if in != nil {
		in.close()
	}
	if out != nil && out != in {
		out.close()
	}
	// The host->guest pump may wait to write into a line nobody reads.
	l.master.SetWriteDeadline(time.Now())
	l.pumps.Wait()
	l.master.SetWriteDeadline(time.Time{})
	// Only now may the watcher see the line closed and open it again.
	l.mu.Lock()
	if l.state == lineOpen {
		l.state = lineClosed
	}
	l.mu.Unlock()
}

// config is the answer to `config conN`: the configured spec, or what the
// channels are while the line is open.
func (l *line) config() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == lineOpen && l.desc != "" && !chanspec.IsNone(l.plan.Spec) {
		return l.desc
	}
	return chanspec.Stored(l.plan.Spec)
}

// config answers a config query for name ("con1", "ssl0").
func (cs *consoles) config(name string) string {
	if cs == nil {
		return ""
	}
	for _, l := range cs.lines {
		if l.plan.Name() == name {
			return l.config()
		}
	}
	if name == "con0" {
		for _, lp := range cs.plan.Lines {
			if !lp.Serial && lp.N == 0 {
				if cs.con0Desc != "" {
					return cs.con0Desc
				}
				return lp.Spec
			}
		}
	}
	return chanspec.None
}

// openPair opens the channels of a spec; out is nil when in serves both.
func (cs *consoles) openPair(ctx context.Context, lp plan.Line, p chanspec.Pair) (in, out *endpoint, err error) {
	if !p.Split {
		in, err = cs.openChan(ctx, lp, p.In, os.O_RDWR)
		return in, nil, err
	}
	if in, err = cs.openChan(ctx, lp, p.In, os.O_RDONLY); err != nil {
		return nil, nil, err
	}
	if out, err = cs.openChan(ctx, lp, p.Out, os.O_WRONLY); err != nil {
		in.close()
		return nil, nil, err
	}
	in.w = io.Discard
	out.r = nil
	return in, out, nil
}

// openChan opens one channel for mode (O_RDWR, or O_RDONLY/O_WRONLY for a
// side of a split).
func (cs *consoles) openChan(ctx context.Context, lp plan.Line, c chanspec.Chan, mode int) (*endpoint, error) {
	switch c.Kind {
	case chanspec.Null:
		return &endpoint{w: io.Discard, close: func() {}, desc: "null"}, nil
	case chanspec.FD:
		f := cs.files[fmt.Sprintf("hostfd-%d", c.FD)]
		if f == nil {
			return nil, fmt.Errorf("fd_open : file descriptor %d is not open", c.FD)
		}
		e, err := fdEndpoint(f)
		if err != nil {
			return nil, err
		}
		e.desc = c.String()
		return e, nil
	case chanspec.Tty:
		f, err := cs.openTTY(c.Dev, mode|unix.O_NOCTTY|unix.O_NONBLOCK)
		if err != nil {
			var errno syscall.Errno
			errors.As(err, &errno)
			return nil, fmt.Errorf("tty_open : failed to open '%s', errno = %d", c.Dev, int(errno))
		}
		e, err := fdEndpoint(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		e.desc = c.String()
		return e, nil
	case chanspec.Pty:
		return nil, errors.New("getmaster - no usable host pty devices")
	case chanspec.Pts:
		master, slave, err := openPty("/dev/ptmx")
		if err != nil {
			var errno syscall.Errno
			errors.As(err, &errno)
			return nil, fmt.Errorf("get_pty : Couldn't open /dev/ptmx - err = %d", int(errno))
		}
		makeRaw(master)
		// Holding the slave keeps the master from reading EIO while no
		// one on the host has attached yet.
		hold, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			master.Close()
			return nil, fmt.Errorf("get_pty : open %s: %w", slave, err)
		}
		if lp.Serial {
			cs.announce("Serial line %d assigned device '%s'", lp.N, slave)
		} else {
			cs.announce("Virtual console %d assigned device '%s'", lp.N, slave)
		}
		return &endpoint{r: master, w: master, desc: "pts:" + slave, close: func() { master.Close(); hold.Close() }}, nil
	case chanspec.Port:
		p := cs.ports[c.Port]
		if p == nil {
			return nil, fmt.Errorf("port_open : port %d is not listening", c.Port)
		}
		t, err := p.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("port_open : %w", err)
		}
		t.MakeRaw()
		return &endpoint{r: t.File, w: t.File, desc: c.String(), close: func() { t.Close() }}, nil
	case chanspec.Xterm:
		if k := cs.k; k != nil && k.plan.Shifted && k.helper != nil {
			// Run as root: the emulator must run as the user who started
			// linux (its display, its X authority), so P runs it.
			f, done, err := k.helper.xterm(ctx, lp.Serial, lp.N)
			if err != nil {
				return nil, err
			}
			return &endpoint{r: f, w: f, desc: "xterm", close: func() { f.Close(); done.Close() }}, nil
		}
		t, err := portchan.OpenXterm(ctx, portchan.XtermConfig{
			Emulator: cs.plan.Xterm[0], TitleSwitch: cs.plan.Xterm[1], ExecSwitch: cs.plan.Xterm[2],
			Title: portchan.Title(lp.Serial, lp.N, cs.plan.Umid),
		})
		if err != nil {
			return nil, err
		}
		t.MakeRaw()
		return &endpoint{r: t.File, w: t.File, desc: "xterm", close: func() { t.Close() }}, nil
	}
	return nil, fmt.Errorf("unknown channel type %v", c.Kind)
}

// fdEndpoint makes an endpoint of a pollable, non-blocking dup of f (so
// closing it unblocks the input pump and leaves the host's fd open), in raw
// mode while open when it is a terminal (the termios is restored at close).
func fdEndpoint(f *os.File) (*endpoint, error) {
	fd := -1
	var err error
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	rc.Control(func(old uintptr) { fd, err = unix.FcntlInt(old, unix.F_DUPFD_CLOEXEC, 3) })
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	unix.SetNonblock(fd, true)
	var restore func()
	if st, err := term.MakeRaw(fd); err == nil {
		restore = func() { term.Restore(fd, st) }
	}
	nf := os.NewFile(uintptr(fd), f.Name())
	return &endpoint{r: nf, w: nf, close: func() {
		if restore != nil {
			restore()
		}
		nf.Close()
	}}, nil
}

// openPty opens a pty pair at ptmx and returns the master (pollable) and
// the slave's path.
func openPty(ptmx string) (*os.File, string, error) {
	fd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: ptmx, Err: err}
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, "", os.NewSyscallError("ioctl TIOCSPTLCK", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, "", os.NewSyscallError("ioctl TIOCGPTN", err)
	}
	slave := filepath.Join(filepath.Dir(ptmx), strconv.Itoa(int(n)))
	if ptmx == "/dev/ptmx" {
		slave = "/dev/pts/" + strconv.Itoa(int(n))
	}
	// A master reports POLLHUP only after its slave has been closed once.
	sfd, err := unix.Open(slave, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, "", &os.PathError{Op: "open", Path: slave, Err: err}
	}
	unix.Close(sfd)
	return os.NewFile(uintptr(fd), ptmx), slave, nil
}

// makeRaw puts the terminal behind f in raw mode.
func makeRaw(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { term.MakeRaw(int(fd)) })
	}
}

// setWinsize copies the window size of the input channel, when it is a
// terminal, to the guest's line (when it differs: setting it sends the
// guest's foreground group SIGWINCH).
func setWinsize(from, to *os.File) {
	var ws *unix.Winsize
	if rc, err := from.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { ws, _ = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ) })
	}
	if ws == nil || ws.Row == 0 {
		return
	}
	if rc, err := to.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if cur, err := unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ); err == nil && *cur == *ws {
				return
			}
			unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
		})
	}
}

// console0 is the console's host side when con0 is not the default.
type console0 struct {
	in, out *os.File // nil: no input / output
	close   func()   // after the guest is gone
}

// openConsole opens a non-default con0 at boot; nil for the default
// (fd:0,fd:1: K's own input and output stay the console's).
func (cs *consoles) openConsole() *console0 {
	spec := cs.con0Spec()
	if spec == "" {
		return nil
	}
	none := &console0{close: func() {}}
	pair, err := chanspec.Parse(spec)
	if err != nil { // none, or a failure setup printed: no console
		return none
	}
	lp := plan.Line{N: 0, Spec: spec}
	in, out, err := cs.openPair(context.Background(), lp, pair)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return none
	}
	if out == nil {
		out = in
	}
	c := &console0{in: in.r, close: func() {
		in.close()
		if out != in {
			out.close()
		}
	}}
	cs.con0Desc = in.desc
	if pair.Split {
		cs.con0Desc = in.desc + "," + out.desc
	}
	if f, ok := out.w.(*os.File); ok {
		c.out = f
	} else {
		c.out, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	return c
}

// setupConsoles is kside's entry point: it creates the lines (adding their
// slaves to devices) and opens a non-default console. start begins
// watching for guest opens (call it once the guest runs); stop drains and
// closes everything (call it after the guest is gone).
func (k *kernel) setupConsoles(devices map[string]string) (start, stop func(), err error) {
	cs := newConsoles(k, k.plan.Consoles, k.files)
	if cs == nil {
		return func() {}, func() {}, nil
	}
	k.cons = cs
	if err := cs.setup(k.plan.WorkDir, devices); err != nil {
		return nil, nil, err
	}
	closeCon0 := func() {}
	if c := cs.openConsole(); c != nil { // kside.go pumps the console
		k.in, k.out, closeCon0 = c.in, c.out, c.close
	}
	cs.conIn, cs.conMaster = k.in, k.master
	return cs.start, func() { cs.shutdown(); closeCon0() }, nil
}

// lineConfig is K's answer to a "line NAME" control request.
func (k *kernel) lineConfig(name string) string {
	if k.cons == nil {
		if name == "con0" {
			return chanspec.DefaultCon0
		}
		return chanspec.None
	}
	if name == "con0" && k.cons.con0Spec() == "" {
		return chanspec.DefaultCon0
	}
	return k.cons.config(name)
}

// lineSet is K's side of `config conN=SPEC` and `remove conN` (SPEC
// none): plan.ErrBusy while the guest has the line open, plan.ErrParse
// for a bad spec.
func (k *kernel) lineSet(name, spec string) error {
	if k.cons == nil || name == "con0" {
		return errors.New("umlkit cannot reconfigure the console (con0) of a running machine")
	}
	var l *line
	for _, c := range k.cons.lines {
		if c.plan.Name() == name {
			l = c
		}
	}
	if l == nil {
		if chanspec.IsNone(spec) {
			return nil
		}
		return errors.New(name + " does not exist in this guest: umlkit creates the guest's lines at boot (give " + name + "= on the command line)")
	}
	pair := chanspec.Pair{In: chanspec.Chan{Kind: chanspec.Null}, Out: chanspec.Chan{Kind: chanspec.Null}}
	if !chanspec.IsNone(spec) {
		p, err := chanspec.Parse(spec)
		if err != nil {
			var pe *chanspec.Error
			if errors.As(err, &pe) && pe.Msg != "" {
				k.logf("%s", pe.Msg)
			}
			return plan.ErrParse
		}
		pair = p
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != lineClosed {
		return plan.ErrBusy
	}
	l.plan.Spec, l.pair = spec, pair
	return nil
}

// openTTY opens a tty: channel's host device; a root-run K (an
// unprivileged id block) has P open it (host/hosthelper.go), and P opens only the
// devices the machine's lines name.
func (cs *consoles) openTTY(dev string, flags int) (*os.File, error) {
	k := cs.k
	if k == nil || !k.plan.Shifted || k.helper == nil {
		return os.OpenFile(dev, flags, 0)
	}
	return k.helper.tty(dev, flags)
}
