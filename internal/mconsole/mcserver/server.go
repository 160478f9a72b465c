// Package mcserver is the kernel side of the UML management console: it owns
// the SOCK_DGRAM socket <uml_dir>/<umid>/mconsole, decodes requests, matches
// them against a command table by prefix, and sends replies split into
// 511-byte parts chained with "more". It also sends notify-socket messages.
//
// Protocol: shared/spec/mconsole.md §2-§5. Wire encoding: internal/mconsole.
//
// # API for the kernel (linux)
//
//	s, err := mcserver.Listen(filepath.Join(umidDir, "mconsole"))
//	s.Handle("version", mcserver.KernelHelp("version"), func(ctx context.Context, r *mcserver.Request) mcserver.Reply {
//		return mcserver.OK(uname)
//	})
//	s.Handle("halt", mcserver.KernelHelp("halt"), func(ctx context.Context, r *mcserver.Request) mcserver.Reply {
//		return mcserver.Reply{After: m.Halt} // After runs once the reply is sent
//	})
//	s.Handle("sysrq", mcserver.KernelHelp("sysrq"), func(ctx context.Context, r *mcserver.Request) mcserver.Reply {
//		r.Stream(out) // streamed output: more=1 packets
//		return mcserver.OK("") // the final empty packet
//	})
//	s.HandleStopGo(m.Pause, m.Resume) // "stop"/"go" with the kernel's texts
//	go s.Serve(ctx)                    // returns nil after Close or ctx end
//	...
//	s.Close()                          // idempotent; waits for Serve; unlinks the socket
//
// "help" is built in (the table's help texts, in the kernel's order; see
// HelpText) and can be replaced with Handle. Commands are matched as the
// kernel does: the request text must start with the command name (no leading
// space, case-sensitive), names of the 6.1 kernel in its order first
// (mconsole.KernelCommands), then other names in registration order.
// Unmatched text gets err=1 "Unknown command". Request.Arg is the text after
// the name, untrimmed (e.g. " ubd1=x" for "config ubd1=x").
//
// Protocol errors are answered here: a bad magic gets the bare version-0
// text, len >= 512 gets err=1 "Request too large" (dropped), a version other
// than 2 gets err=1 "This driver only supports version 2 clients" and is then
// processed anyway (the kernel does the same).
//
// # Concurrency
//
// Serve runs on one goroutine and calls handlers one at a time, in arrival
// order; a handler that blocks delays later requests (as the kernel's work
// queue does). Handle and HandleStopGo may be called before or during Serve
// (the table is guarded by mu). Close closes the socket, waits for Serve to
// return and removes the socket file.
package mcserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/mconsole"
)

// Reply is the final answer of a handler.
type Reply struct {
	// Err is 0 (OK), 1 (error), or a negative errno as u32 (mconsole.Errno).
	Err uint32
	// Text is split into parts of at most 511 bytes.
	Text string
	// After, if set, runs after the reply has been sent (halt, reboot).
	After func()
}

// OK returns a successful reply with text.
func OK(text string) Reply { return Reply{Text: text} }

// Error returns an err=1 reply with text.
func Error(text string) Reply { return Reply{Err: 1, Text: text} }

// Errno returns a reply carrying -errno (e.g. -ENODEV = 237 for uml_mconsole).
func Errno(errno syscall.Errno, text string) Reply {
	return Reply{Err: mconsole.Errno(int(errno)), Text: text}
}

// HandlerFunc serves one command.
type HandlerFunc func(ctx context.Context, req *Request) Reply

// Request is one decoded command being served.
type Request struct {
	// Text is the command line as received (cut at its first NUL).
	Text string
	// Name is the matched command name; Arg is Text after it.
	Name, Arg string
	// Version is the client's protocol version (normally 2).
	Version uint32

	s    *Server
	from rawAddr
}

// Stream sends text as streamed output: packets of at most 511 bytes, all
// with more=1 and err=0. The handler's returned Reply ends the stream.
func (r *Request) Stream(text string) error {
	if text == "" {
		return nil
	}
	return r.s.send(&r.from, mconsole.Split(0, text, false))
}

// Command is one entry of the command table.
type Command struct {
	Name    string
	Help    string // lines for the help text, e.g. "    halt - Halt UML \n"
	Handler HandlerFunc
}

// Server serves one mconsole socket.
type Server struct {
	path string
	file *os.File
	raw  syscall.RawConn

	mu      sync.Mutex // guards cmds, stopped
	cmds    []Command
	stopped bool

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	served    sync.WaitGroup
}

// ErrInUse is returned by Listen when a live server owns the socket path.
var ErrInUse = errors.New("mconsole socket in use by a running UML")

// Listen creates the mconsole socket at path (close-on-exec, non-blocking).
// An existing socket nobody answers on is stale and replaced; a live one is
// ErrInUse. The path must fit sun_path (107 bytes + NUL).
func Listen(path string) (*Server, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("mconsole socket %s: path longer than 107 bytes", path)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("mconsole socket %s: exists and is not a socket", path)
		}
		if live(path) {
			return nil, fmt.Errorf("mconsole socket %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale mconsole socket: %w", err)
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	s := &Server{path: path, file: f, raw: raw, done: make(chan struct{})}
	s.Handle("help", KernelHelp("help"), func(context.Context, *Request) Reply { return OK(s.HelpText()) })
	return s, nil
}

// live reports whether something answers on the datagram socket at path.
func live(path string) bool {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: path}) == nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// InitMessage is the kernel's boot line for the socket (KERN_INFO).
func InitMessage(path string) string {
	return fmt.Sprintf("mconsole (version 2) initialized on %s", path)
}

// KernelHelp returns the 6.1 kernel's help lines for a command name ("" if
// the kernel has no such command).
func KernelHelp(name string) string {
	for _, c := range mconsole.KernelCommands {
		if c.Name == name {
			return c.Help
		}
	}
	return ""
}

func kernelIndex(name string) int {
	for i, c := range mconsole.KernelCommands {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Handle adds (or replaces) a command.
func (s *Server) Handle(name, help string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Command{Name: name, Help: help, Handler: h}
	for i := range s.cmds {
		if s.cmds[i].Name == name {
			s.cmds[i] = c
			return
		}
	}
	// Kernel names keep the kernel's order, before any other name.
	ki := kernelIndex(name)
	at := len(s.cmds)
	for i, e := range s.cmds {
		ei := kernelIndex(e.Name)
		if ki >= 0 && (ei < 0 || ei > ki) {
			at = i
			break
		}
	}
	s.cmds = append(s.cmds[:at], append([]Command{c}, s.cmds[at:]...)...)
}

// Commands returns a copy of the table in dispatch order.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.cmds...)
}

// HelpText is the reply of "help": "Commands: \n" and each command's help,
// the kernel's commands in the kernel's help order, then the others in
// registration order. With the 13 commands of the 6.1 kernel registered it
// is the kernel's 722-byte text byte for byte.
func (s *Server) HelpText() string {
	cmds := s.Commands()
	var b strings.Builder
	b.WriteString(mconsole.HelpHeader)
	for _, name := range mconsole.HelpOrder {
		for _, c := range cmds {
			if c.Name == name {
				b.WriteString(c.Help)
			}
		}
	}
	for _, c := range cmds {
		if kernelIndex(c.Name) < 0 {
			b.WriteString(c.Help)
		}
	}
	return b.String()
}

// Texts of stop/go.
const (
	TextStopped        = "stopped"
	TextAlreadyStopped = "Already stopped"
	TextNotStopped     = "Not stopped"
)

// HandleStopGo registers "stop" and "go" with the kernel's semantics: stop
// calls pause and answers "stopped" (err=1 "Already stopped" when stopped);
// go calls resume and answers empty OK (err=1 "Not stopped" when running).
// Other commands keep being served while stopped.
func (s *Server) HandleStopGo(pause, resume func()) {
	s.Handle("stop", KernelHelp("stop"), func(context.Context, *Request) Reply {
		s.mu.Lock()
		was := s.stopped
		s.stopped = true
		s.mu.Unlock()
		if was {
			return Error(TextAlreadyStopped)
		}
		pause()
		return OK(TextStopped)
	})
	s.Handle("go", KernelHelp("go"), func(context.Context, *Request) Reply {
		s.mu.Lock()
		was := s.stopped
		s.stopped = false
		s.mu.Unlock()
		if !was {
			return Error(TextNotStopped)
		}
		resume()
		return OK("")
	})
}

// Stopped reports whether a "stop" is in effect.
func (s *Server) Stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func (s *Server) lookup(text string) (Command, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		if strings.HasPrefix(text, c.Name) {
			return c, true
		}
	}
	return Command{}, false
}

// Serve answers requests until ctx is done or Close is called; it then
// returns nil. Other socket errors end it with the error.
func (s *Server) Serve(ctx context.Context) error {
	s.served.Add(1)
	defer s.served.Done()
	select {
	case <-s.done:
		return nil
	default:
	}
	stop := context.AfterFunc(ctx, func() { s.file.SetReadDeadline(aLongTimeAgo) })
	defer stop()
	buf := make([]byte, mconsole.RequestSize)
	for {
		var from rawAddr
		var n int
		var rerr error
		err := s.raw.Read(func(fd uintptr) bool {
			n, rerr = recvfrom(int(fd), buf, &from)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if ctx.Err() != nil || s.isClosed() {
				return nil
			}
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("mconsole receive: %w", err)
		}
		s.serveOne(ctx, buf[:n], &from)
	}
}

func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Server) serveOne(ctx context.Context, b []byte, from *rawAddr) {
	var m mconsole.Request
	switch err := m.UnmarshalBinary(b); err {
	case nil:
	case mconsole.ErrBadMagic:
		s.sendRaw(from, []byte(mconsole.Version0Reply))
		return
	default:
		s.send(from, mconsole.Split(1, mconsole.TextTooLarge, true))
		return
	}
	if m.Version != mconsole.Version {
		s.send(from, mconsole.Split(1, mconsole.TextVersionMismatch, true))
	}
	c, ok := s.lookup(m.Text)
	if !ok {
		s.send(from, mconsole.Split(1, mconsole.TextUnknownCommand, true))
		return
	}
	req := &Request{Text: m.Text, Name: c.Name, Arg: m.Text[len(c.Name):], Version: m.Version, s: s, from: *from}
	r := c.Handler(ctx, req)
	s.send(from, mconsole.Split(r.Err, r.Text, true))
	if r.After != nil {
		r.After()
	}
}

// send writes reply packets to a client; a client that went away is ignored
// (the kernel ignores it too).
func (s *Server) send(to *rawAddr, parts []mconsole.Reply) error {
	buf := make([]byte, 0, mconsole.MaxReplySize)
	for _, p := range parts {
		b, err := p.AppendBinary(buf[:0])
		if err != nil {
			return err
		}
		if err := s.sendRaw(to, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) sendRaw(to *rawAddr, b []byte) error {
	var serr error
	err := s.raw.Write(func(fd uintptr) bool {
		serr = sendto(int(fd), b, to)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return nil
}

// Close stops Serve, waits for it and removes the socket. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.file.SetReadDeadline(aLongTimeAgo)
		s.served.Wait()
		err = s.file.Close()
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	})
	return err
}
