package portchan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/porthelper"
	"github.com/umlkit/umlkit/internal/sys"
)

// PortConfig describes a port channel listener.
type PortConfig struct {
	// Host is the address to bind; "" binds all addresses (INADDR_ANY),
	// as the kernel does.
	Host string
	// Port is the TCP port (0 picks a free one; see Port.Addr).
	Port int
	// Telnetd is the telnet daemon (default DefaultTelnetd, PATH lookup in
	// this process's PATH).
	Telnetd string
	// Helper is the -L program (default HelperPath(os.Getenv)).
	Helper string
	// Env is in.telnetd's environment (default os.Environ()).
	Env []string
	// Log receives kernel log lines (NoWaiterLog, start failures); may be nil.
	Log func(string)
	// Listener, when set, is an already bound listener to serve instead of
	// binding Host:Port (linux binds in the host's network namespace and
	// hands the socket to its kernel process). The Port owns it.
	Listener *net.TCPListener
}

// Port is a listening port channel shared by the lines that name the port.
type Port struct {
	cfg     PortConfig
	ln      *net.TCPListener
	waiters atomic.Int32   // Accept calls in progress
	ready   chan *Terminal // pending terminals, handed to Accept; never closed
	closed  chan struct{}  // closed by Close
	once    sync.Once
	wg      sync.WaitGroup // the accept loop and the per-connection goroutines
}

// ListenPort starts listening and accepting connections.
func ListenPort(cfg PortConfig) (*Port, error) {
	if cfg.Telnetd == "" {
		cfg.Telnetd = DefaultTelnetd
	}
	if cfg.Helper == "" {
		cfg.Helper, _ = HelperPath(os.Getenv)
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	ln := cfg.Listener
	if ln == nil {
		l, err := net.Listen("tcp4", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		if err != nil {
			return nil, fmt.Errorf("port channel: %w", err)
		}
		ln = l.(*net.TCPListener)
	}
	p := &Port{cfg: cfg, ln: ln, ready: make(chan *Terminal), closed: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the bound address.
func (p *Port) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

// Accept is a line opening on the port: it waits for a connection's terminal
// (taking a pending one first) until ctx ends or the port is closed.
func (p *Port) Accept(ctx context.Context) (*Terminal, error) {
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	select {
	case t := <-p.ready:
		return t, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closed:
		return nil, ErrClosed
	}
}

// Serve calls fn with every terminal, one Accept at a time (fn runs in its
// own goroutine), until ctx ends or the port is closed.
func (p *Port) Serve(ctx context.Context, fn func(*Terminal)) error {
	for {
		t, err := p.Accept(ctx)
		if err != nil {
			return err
		}
		go fn(t)
	}
}

// Close stops listening, kills the in.telnetd and port-helper of connections
// nobody accepted, and waits for the port's goroutines. Terminals already
// returned by Accept are the caller's. Idempotent.
func (p *Port) Close() error {
	var err error
	p.once.Do(func() {
		close(p.closed)
		err = p.ln.Close()
		p.wg.Wait()
	})
	return err
}

func (p *Port) log(s string) {
	if p.cfg.Log != nil {
		p.cfg.Log(s)
	}
}

func (p *Port) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			select {
			case <-p.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.log(fmt.Sprintf("port_accept : accept failed: %v", err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err := p.connection(c); err != nil {
			p.log(err.Error())
		}
	}
}

// connection runs in.telnetd for c and starts the goroutine that receives
// its terminal.
func (p *Port) connection(c *net.TCPConn) error {
	sock, err := c.File() // a dup; the child gets it in blocking mode
	c.Close()
	if err != nil {
		return fmt.Errorf("port_accept : %w", err)
	}
	defer sock.Close()
	kernelEnd, helperEnd, err := dgramPair()
	if err != nil {
		return fmt.Errorf("port_connection : %w", err)
	}
	defer helperEnd.Close()
	cmd := exec.Command(p.cfg.Telnetd, "-L", p.cfg.Helper)
	cmd.Env = p.cfg.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sock, sock, sock
	cmd.ExtraFiles = []*os.File{helperEnd} // fd 3
	proc, err := startChild(cmd)
	if err != nil {
		kernelEnd.Close()
		return fmt.Errorf("port_connection : run %s: %w", p.cfg.Telnetd, err)
	}
	if p.waiters.Load() == 0 {
		sock.Write([]byte(NoWaiterMessage))
		p.log(NoWaiterLog)
	}
	p.wg.Add(1)
	go p.receive(kernelEnd, proc)
	return nil
}

// receive waits for port-helper's message, then for a line to Accept it.
// It gives up when in.telnetd exits first or the port is closed.
func (p *Port) receive(conn *net.UnixConn, proc *child) {
	defer p.wg.Done()
	defer conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-proc.done:
		case <-p.closed:
		case <-stop:
			return
		}
		conn.SetReadDeadline(time.Unix(1, 0))
	}()
	data, files, _, err := fdpass.Recv(conn, porthelper.MessageSize, 1)
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		proc.kill()
		return
	}
	t, err := terminalFrom(files[0], data, proc)
	if err != nil {
		p.log(fmt.Sprintf("pipe_interrupt : %v", err))
		proc.kill()
		return
	}
	select {
	case p.ready <- t:
	case <-p.closed:
		t.Close()
	}
}

// dgramPair returns the kernel's end (pollable) and the helper's end (shut
// down for reading, for fd 3) of a SOCK_DGRAM socket pair.
func dgramPair() (*net.UnixConn, *os.File, error) {
	kf, hf, err := sys.FilePair(unix.SOCK_DGRAM, "portchan-kernel-end", "portchan-helper-end")
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Shutdown(int(hf.Fd()), unix.SHUT_RD); err != nil {
		kf.Close()
		hf.Close()
		return nil, nil, os.NewSyscallError("shutdown", err)
	}
	kc, err := net.FileConn(kf)
	kf.Close()
	if err != nil {
		hf.Close()
		return nil, nil, err
	}
	return kc.(*net.UnixConn), hf, nil
}
