//go:build linux

// Package uswitch is the uml_switch engine: a learning Ethernet switch (or
// hub) whose ports are UML daemon-transport clients attached through a unix
// control socket, plus an optional host tap uplink and an optional VXLAN
// uplink to other hosts (vxlan.go).
//
// Wire format: internal/switchproto (shared/spec/switch.md). Behaviour
// follows the real uml_switch (spec §4–§5): same log lines, same stale-socket
// handling, abstract data sockets named like the real one's. Differences, all
// deliberate (docs/uml_switch.md): each v1/v3 client is answered with a data
// socket of its own, connected to it (vde_switch style; v0 clients and named
// data sockets send to one shared socket where ports are identified by the
// sender's full address); every port is sent to only on a socket connected
// once to the client's data socket, and only after the kernel confirmed
// (unix_diag, owner.go) that the client's uid created that socket, so a
// client cannot make the switch write to somebody else's socket; control
// connections are limited in all, per peer uid and in time to send their
// request (ctl.go); frames up to 65535 bytes pass unchanged (the real
// one truncates to 1514); short frames, oversized datagrams and frames from
// unknown senders are dropped (logged, rate-limited); a busy port is waited
// for briefly instead of dropped at once; a port that disconnects forgets
// every MAC learned on it; SIGTERM cleans up like SIGINT; SIGUSR1 logs
// per-port counters.
//
// # Concurrency
//
// One goroutine runs the shared data socket and one each port's own socket
// (recvmmsg batch → forward → sendmmsg per destination; that loop closes the
// socket, while a send-only port socket is closed by its connection's
// goroutine); one accepts control connections (and counts them per uid
// under portsMu) and one per connection waits for its request and EOF; one
// reads the tap. The MAC table is guarded by macMu (held per receive batch by
// the data loops, per frame by the tap reader; never across a send that may
// wait).
// The port set is copy-on-write: ctl goroutines replace it under portsMu,
// readers load it atomically. Lock order: portsMu before macMu (never both
// in practice). Run closes everything it started and waits for it. The
// VXLAN uplink's goroutines and locks: vxlan.go.
package uswitch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// Config configures a switch.
type Config struct {
	// CtlPath is the control socket path (default DefaultCtlPath).
	CtlPath string
	// CtlFile, when set, is an inherited control socket (systemd socket
	// activation): already bound and listening. It is used instead of
	// binding CtlPath, its path (getsockname) names it in messages, and it
	// is never unlinked.
	CtlFile *os.File
	// DataPath, when set, binds the data socket at this path (compat-v0 or
	// the HOWTO's -unix CTL DATA form); otherwise it is abstract.
	DataPath string
	// CompatV0 selects the compat-v0 start-up message and socket names.
	CompatV0 bool
	// Hub floods every frame to every other port.
	Hub bool
	// Tap is a host tap interface to attach as one more port.
	Tap string
	// Vxlan, when set, adds a VXLAN uplink port (vxlan.go).
	Vxlan *VxlanConfig
	// Prog is argv[0] as used in messages.
	Prog string
	// Stdout and Stderr receive the log lines (one Write per line). nil
	// discards.
	Stdout, Stderr io.Writer
	// Stdin, when not nil, is read and discarded; EOF or an error ends the
	// switch (the real one watches stdin only when it is a tty).
	Stdin io.Reader
	// Signals delivers SIGINT/SIGTERM (clean up, return *SignalError) and
	// SIGUSR1 (log the counters).
	Signals <-chan os.Signal
	// AgeLimit is how long a learned MAC lives without traffic (default 100 s).
	AgeLimit time.Duration
	// MaxMACs bounds the MAC table (default 16384).
	MaxMACs int
	// MaxPorts bounds control connections (default DefaultMaxPorts; lowered
	// at Listen to what RLIMIT_NOFILE allows, two descriptors per port).
	MaxPorts int
	// MaxPortsPerUID bounds the control connections of one peer uid
	// (SO_PEERCRED), so one user cannot take every port; root's are not
	// counted against it (default DefaultMaxPortsPerUID; negative: no limit).
	MaxPortsPerUID int
	// IdleTimeout closes a control connection that has not sent its
	// request within it (default DefaultIdleTimeout; negative: never).
	IdleTimeout time.Duration

	// peerUID returns a control connection's peer uid (tests fake it;
	// default SO_PEERCRED).
	peerUID func(*net.UnixConn) (uint32, error)
}

// Defaults of the connection limits (docs/uml_switch.md, "Limits").
const (
	DefaultMaxPorts       = 4096
	DefaultMaxPortsPerUID = 256
	DefaultIdleTimeout    = 10 * time.Second
)

// SignalError is returned by Run after a terminating signal was handled;
// the caller re-raises it so the process dies by the signal like the real one.
type SignalError struct{ Signal syscall.Signal }

func (e *SignalError) Error() string { return "caught signal " + strconv.Itoa(int(e.Signal)) }

// ReportedError is an error whose message has already been written to
// Stderr in the real tool's words; the caller only exits with status 1.
type ReportedError struct{ Err error }

func (e *ReportedError) Error() string { return e.Err.Error() }
func (e *ReportedError) Unwrap() error { return e.Err }

// Errors.
var (
	ErrSocketInUse = errors.New("socket has another server attached to it")
	ErrStale       = errors.New("socket exists, isn't used, but couldn't be removed")
)

const (
	batchSize      = 64
	headroom       = switchproto.VnetHdrLen                     // before each received datagram: room for a vnet header
	bufSize        = headroom + switchproto.MaxVnetDatagram + 1 // a full buffer means oversized
	txBatchSize    = 256
	portBatch      = 16 // a port's own socket queues at most net.unix.max_dgram_qlen (10)
	sweepEvery     = 2 * time.Second
	slowHold       = 250 * time.Millisecond
	listenBacklog  = 128                   // the real one's 15 is easily kept full by a flood
	portSndTimeout = 50 * time.Millisecond // own socket: a wait stalls one sender
	sockBufSize    = 4 << 20
)

// port is one attached client (or the tap).
type port struct {
	id       int                  // control connection fd (as the real one prints), or tap fd
	key      switchproto.Sockaddr // canonical data address (identity)
	sendAddr switchproto.Sockaddr // the data address the client registered
	uid      uint32               // the client's uid (SO_PEERCRED)
	conn     *net.UnixConn        // nil for the tap
	tap      *tuntap.Device       // nil for clients
	vx       *vxUplink            // the VXLAN uplink's port; nil for others
	tapRC    syscall.RawConn      // tap's raw conn (data loop writes)

	// sock is the port's own data socket, connected to the client's: every
	// frame for the port is sent on it. When own is set it is also bound
	// to local (the address replied to the client) and portLoop receives
	// on it; otherwise it is unbound, send-only, and the client sends to
	// the shared data socket.
	sock   *os.File
	sockRC syscall.RawConn
	own    bool
	local  switchproto.Sockaddr
	// vnet: the port uses the vnet extension (docs/uml_switch.md, "Large
	// frames"): every datagram both ways starts with a virtio_net_hdr.
	// Only ports with their own socket (own) negotiate it.
	vnet  bool
	gtap  atomic.Pointer[guestTap] // the guest's TAP the client attached (vnet ports)
	dead  atomic.Bool
	descr string

	slowUntil atomic.Int64 // ns since start: drop instead of waiting while slow

	rxFrames, rxBytes, txFrames, txBytes, drops atomic.Uint64
}

func (p *port) name() string {
	if p.tap != nil {
		return "tap " + p.tap.Name()
	}
	if p.vx != nil {
		return p.vx.describe()
	}
	if p.sendAddr.IsAbstract() {
		// UML's and uml_switch's blob: {0, pad[3], pid, usec}.
		n := "abstract, pid " + strconv.Itoa(int(int32(binary.LittleEndian.Uint32(p.sendAddr[6:10]))))
		if p.vnet {
			n += ", vnet"
		}
		if p.attachedTap() != nil {
			n += ", device attached"
		}
		return n
	}
	return p.sendAddr.String()
}

// portSet is an immutable snapshot of the ports.
type portSet struct {
	byKey map[switchproto.Sockaddr]*port
	list  []*port
}

type macEntry struct {
	port *port
	seen time.Duration
}

// Switch is a bound, running or runnable switch.
type Switch struct {
	cfg   Config
	start time.Time
	out   lineWriter
	err   lineWriter

	ctlLn    *net.UnixListener
	dataFile *os.File
	dataRC   syscall.RawConn
	dataAddr switchproto.Sockaddr
	ctlPath  string // absolute, for removal after a chdir
	dataPath string // absolute; "" when abstract

	portsMu sync.Mutex // guards ports writes, conns, perUID, closing
	ports   atomic.Pointer[portSet]
	conns   map[*net.UnixConn]uint32 // control connection → peer uid
	perUID  map[uint32]int           // open control connections per peer uid
	closing bool

	macMu     sync.Mutex // guards macs, lastSweep, logBuf
	macs      map[ether.MAC]*macEntry
	lastSweep time.Duration
	logBuf    []byte

	tapPort *port
	vx      *vxUplink

	unknownSenders, badFrames atomic.Uint64
	limUnknown, limBad        limiter
	limSend, limUnknownAddr   limiter
	limFull                   limiter
	limConn, limIdle, limRef  limiter
	diagOnce                  sync.Once

	wg       sync.WaitGroup // accept loop, conn handlers
	tapWG    sync.WaitGroup
	stopOnce sync.Once
}

// Listen binds the control and data sockets (handling a stale control
// socket like the real one), attaches the tap if configured and prints the
// start-up line. Run then serves until ctx ends or a signal arrives.
func Listen(cfg Config) (*Switch, error) {
	if cfg.CtlPath == "" {
		cfg.CtlPath = DefaultCtlPath
	}
	if cfg.Prog == "" {
		cfg.Prog = "uml_switch"
	}
	if cfg.AgeLimit == 0 {
		cfg.AgeLimit = 100 * time.Second
	}
	if cfg.MaxMACs == 0 {
		cfg.MaxMACs = 16384
	}
	if cfg.MaxPorts == 0 {
		cfg.MaxPorts = DefaultMaxPorts
	}
	if cfg.MaxPortsPerUID == 0 {
		cfg.MaxPortsPerUID = DefaultMaxPortsPerUID
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.peerUID == nil {
		cfg.peerUID = peerCredUID
	}
	s := &Switch{
		cfg:    cfg,
		start:  time.Now(),
		out:    lineWriter{w: cfg.Stdout},
		err:    lineWriter{w: cfg.Stderr},
		conns:  map[*net.UnixConn]uint32{},
		perUID: map[uint32]int{},
		macs:   map[ether.MAC]*macEntry{},
	}
	s.ports.Store(&portSet{byKey: map[switchproto.Sockaddr]*port{}})
	s.fitFDLimit()
	if cfg.CtlFile != nil {
		if err := s.inheritCtl(); err != nil {
			return nil, err
		}
		cfg.CtlPath = s.cfg.CtlPath
	} else if err := s.bindCtl(); err != nil {
		return nil, err
	}
	if err := s.bindData(); err != nil {
		s.ctlLn.Close()
		if s.ctlPath != "" {
			os.Remove(s.ctlPath)
		}
		return nil, err
	}
	if err := s.openVxlanUplink(); err != nil {
		s.ctlLn.Close()
		if s.ctlPath != "" {
			os.Remove(s.ctlPath)
		}
		s.dataFile.Close()
		if s.dataPath != "" {
			os.Remove(s.dataPath)
		}
		return nil, err
	}
	msg := fmt.Sprintf("%s attached to unix socket '%s'", cfg.Prog, cfg.CtlPath)
	if s.dataPath != "" {
		msg = fmt.Sprintf("%s attached to unix sockets '%s' and '%s'", cfg.Prog, cfg.CtlPath, cfg.DataPath)
	}
	if cfg.Tap != "" {
		s.openTap()
		msg += fmt.Sprintf(" tap device '%s'", cfg.Tap)
	}
	s.out.printf("%s\n", msg)
	if s.vx != nil {
		s.addPort(s.vx.port)
		s.out.printf("%s", s.vx.startLine())
	}
	return s, nil
}

// fdReserve is what the switch keeps of RLIMIT_NOFILE for itself
// (listeners, tap, log and pid files, the runtime); each port takes two.
const fdReserve = 64

// fitFDLimit lowers MaxPorts to what the open file limit allows, so the
// limit is met by refusing connections one at a time rather than by accept
// failing for everyone (the runtime has already raised the soft limit to
// the hard one).
func (s *Switch) fitFDLimit() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<30 {
		return
	}
	if n := max(1, (int(rl.Cur)-fdReserve)/2); n < s.cfg.MaxPorts {
		s.err.printf("Limiting connections to %d (open file limit %d)\n", n, rl.Cur)
		s.cfg.MaxPorts = n
	}
}

// DataAddr returns the data socket address replied to clients.
func (s *Switch) DataAddr() switchproto.Sockaddr { return s.dataAddr }

// Serve is Listen followed by Run.
func Serve(ctx context.Context, cfg Config) error {
	s, err := Listen(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run serves until ctx is done (returns nil), stdin reaches EOF (message,
// returns nil) or a terminating signal arrives (message, returns
// *SignalError). Sockets are removed in every case.
func (s *Switch) Run(ctx context.Context) error {
	dataDone := make(chan error, 1)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	go func() { dataDone <- s.dataLoop() }()
	if s.tapPort != nil {
		s.tapWG.Add(1)
		go func() { defer s.tapWG.Done(); s.tapLoop() }()
	}
	if s.vx != nil {
		for _, vs := range s.vx.socks {
			s.tapWG.Add(1)
			go func() { defer s.tapWG.Done(); s.vxLoop(s.vx, vs) }()
		}
	}
	stdinDone := make(chan struct{})
	if s.cfg.Stdin != nil {
		go func() {
			io.Copy(io.Discard, s.cfg.Stdin)
			close(stdinDone)
		}()
	}
	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-stdinDone:
			s.out.printf("EOF on stdin, cleaning up and exiting\n")
			break loop
		case sig := <-s.cfg.Signals:
			ss, _ := sig.(syscall.Signal)
			if ss == syscall.SIGUSR1 {
				s.logCounters()
				continue
			}
			s.out.printf("Caught signal %d, cleaning up and exiting\n", int(ss))
			result = &SignalError{Signal: ss}
			break loop
		case err := <-dataDone:
			s.shutdown()
			return fmt.Errorf("data socket: %w", err)
		}
	}
	s.shutdown()
	<-dataDone
	return result
}

// shutdown stops every goroutine, closes the sockets and removes the files.
func (s *Switch) shutdown() {
	s.stopOnce.Do(func() {
		s.portsMu.Lock()
		s.closing = true
		for c := range s.conns {
			c.Close()
		}
		s.portsMu.Unlock()
		s.ctlLn.Close()
		s.dataFile.SetReadDeadline(time.Unix(1, 0))
		for _, p := range s.ports.Load().list {
			if p.sock != nil {
				p.sock.SetReadDeadline(time.Unix(1, 0))
			}
			if g := p.attachedTap(); g != nil {
				g.f.Close()
			}
		}
		if s.tapPort != nil {
			s.tapPort.tap.Close()
		}
		if s.vx != nil {
			s.vx.stop()
		}
		s.tapWG.Wait()
		if s.vx != nil {
			s.vx.close()
		}
		s.wg.Wait()
		if s.ctlPath == "" {
			// inherited socket: its owner removes it
		} else if err := os.Remove(s.ctlPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.err.printf("Couldn't remove control socket '%s' : %s\n", s.cfg.CtlPath, sys.Strerror(err))
		}
		if s.dataPath != "" {
			if err := os.Remove(s.dataPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.err.printf("Couldn't remove data socket '%s' : %s\n", s.cfg.DataPath, sys.Strerror(err))
			}
		}
	})
}

// Close stops a switch that Run is not serving (or after Run returned).
func (s *Switch) Close() error {
	s.shutdown()
	return s.dataFile.Close()
}

func (s *Switch) logCounters() {
	ps := s.ports.Load()
	s.out.printf("Switch: %d ports, %d frames from unknown senders, %d bad frames\n",
		len(ps.list), s.unknownSenders.Load(), s.badFrames.Load())
	for _, p := range ps.list {
		s.out.printf("Port %d (%s): rx %d frames %d bytes, tx %d frames %d bytes, %d dropped\n",
			p.id, p.name(), p.rxFrames.Load(), p.rxBytes.Load(), p.txFrames.Load(), p.txBytes.Load(), p.drops.Load())
	}
	if s.vx != nil {
		s.logVxlan(s.vx)
	}
}

// Counters is a snapshot of one port's counters.
type Counters struct {
	ID                                          int
	Name                                        string
	RxFrames, RxBytes, TxFrames, TxBytes, Drops uint64
}

// Counters returns the per-port counters (the ones SIGUSR1 logs).
func (s *Switch) Counters() []Counters {
	ps := s.ports.Load()
	out := make([]Counters, 0, len(ps.list))
	for _, p := range ps.list {
		out = append(out, Counters{p.id, p.name(), p.rxFrames.Load(), p.rxBytes.Load(), p.txFrames.Load(), p.txBytes.Load(), p.drops.Load()})
	}
	return out
}

// addPort publishes p in a new port set.
func (s *Switch) addPort(p *port) {
	s.portsMu.Lock()
	defer s.portsMu.Unlock()
	old := s.ports.Load()
	ns := &portSet{byKey: make(map[switchproto.Sockaddr]*port, len(old.byKey)+1), list: make([]*port, 0, len(old.list)+1)}
	for _, q := range old.list {
		if p.isClient() && q.isClient() && q.key == p.key {
			continue // the newest registration of an address wins
		}
		ns.list = append(ns.list, q)
		if q.isClient() {
			ns.byKey[q.key] = q
		}
	}
	ns.list = append(ns.list, p)
	if p.isClient() {
		ns.byKey[p.key] = p
	}
	s.ports.Store(ns)
}

// removePort marks p dead and drops it from the port set.
func (s *Switch) removePort(p *port) {
	p.dead.Store(true)
	if g := p.attachedTap(); g != nil {
		g.f.Close() // ends guestTapLoop
	}
	if p.sock != nil {
		p.sock.SetReadDeadline(time.Unix(1, 0)) // its loop closes it
	}
	s.portsMu.Lock()
	defer s.portsMu.Unlock()
	old := s.ports.Load()
	ns := &portSet{byKey: make(map[switchproto.Sockaddr]*port, len(old.byKey)), list: make([]*port, 0, len(old.list))}
	for _, q := range old.list {
		if q == p {
			continue
		}
		ns.list = append(ns.list, q)
		if q.isClient() {
			ns.byKey[q.key] = q
		}
	}
	s.ports.Store(ns)
}

// lineWriter writes one log line per Write call.
type lineWriter struct{ w io.Writer }

func (l lineWriter) printf(format string, args ...any) {
	if l.w == nil {
		return
	}
	l.w.Write([]byte(fmt.Sprintf(format, args...)))
}

func (l lineWriter) write(b []byte) {
	if l.w != nil {
		l.w.Write(b)
	}
}

// limiter allows a burst of lines per second and counts the rest.
type limiter struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

const limitPerSecond = 20

// allow reports whether a line may be printed; note is the number of lines
// suppressed in the previous window (to be mentioned once).
func (l *limiter) allow(now time.Time) (ok bool, note int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		note = l.suppressed
		l.window, l.n, l.suppressed = now, 0, 0
	}
	if l.n >= limitPerSecond {
		l.suppressed++
		return false, note
	}
	l.n++
	return true, note
}

// limited prints a rate-limited line.
func (s *Switch) limited(l *limiter, w lineWriter, format string, args ...any) {
	ok, note := l.allow(time.Now())
	if note > 0 {
		w.printf("(%d similar messages suppressed)\n", note)
	}
	if ok {
		w.printf(format, args...)
	}
}
