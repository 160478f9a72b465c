package mcclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/sys"
)

// Usage is the real client's usage line (stderr, exit 1, no arguments).
const Usage = "Usage : uml_mconsole socket-name [command]\n"

// LocalHelp is printed after the kernel's help by the local "help" command.
const LocalHelp = `Additional local mconsole commands:
    quit - Quit mconsole
    switch <socket-name> - Switch control to the given machine
    log -f <filename> - use contents of <filename> as UML log messages
    mconsole-version - version of this mconsole program
    int  - Interrupt UML session
`

// DefaultTimeout bounds each command's wait for its reply.
const DefaultTimeout = 10 * time.Second

// logChunk is the most text one "log" request carries.
const logChunk = 506

// Console is the state of one uml_mconsole session: the machine it talks
// to, the name shown in the prompt, and where output goes. It implements
// the real client's command processing (spec mconsole.md §6.2-§6.4).
type Console struct {
	Stdout, Stderr io.Writer
	Lookup         Lookup
	// Timeout bounds the wait for each reply (0: wait forever).
	Timeout time.Duration

	name    string // prompt name, "[None]" until a successful resolution
	path    string // resolved socket path, "" if none
	missing string // the name that failed to resolve, while none did
	client  *Client
}

// NewConsole returns a console with nothing resolved yet.
func NewConsole(stdout, stderr io.Writer, l Lookup, timeout time.Duration) *Console {
	return &Console{Stdout: stdout, Stderr: stderr, Lookup: l, Timeout: timeout, name: "[None]"}
}

// Close releases the client socket.
func (c *Console) Close() {
	if c.client != nil {
		c.client.Close()
	}
}

// Prompt returns "(<name>) " with name cut to 11 bytes, as the real one.
func (c *Console) Prompt() string {
	n := c.name
	if len(n) > 11 {
		n = n[:11]
	}
	return "(" + n + ") "
}

// Switch resolves name and makes it the current machine. On failure the
// stat warnings of every candidate are printed (only then: a valid name
// prints nothing) and the previous machine stays current.
func (c *Console) Switch(name string) error {
	path, tried, err := c.Lookup.Resolve(name)
	if err != nil {
		for _, t := range tried {
			fmt.Fprintf(c.Stderr, "Warning: couldn't stat file: %s - %s\n", t.Path, sys.Strerror(t.Err))
		}
		if c.path == "" {
			c.missing = name
		}
		return err
	}
	if c.client == nil {
		cl, err := Dial(path)
		if err != nil {
			return err
		}
		c.client = cl
	}
	c.client.path = path
	c.path, c.name = path, name
	return nil
}

// Command runs one command line (local or sent to the kernel) and returns
// its result: the reply's err for kernel commands, 0 or 1 for local ones.
// quit is reported by returning quit=true.
func (c *Console) Command(ctx context.Context, line string) (result uint32, quit bool, err error) {
	line = strings.TrimRightFunc(line, isSpace)
	switch {
	case strings.HasPrefix(line, "quit"):
		return 0, true, nil
	case strings.HasPrefix(line, "help"):
		c.send(ctx, line, nil)
		io.WriteString(c.Stdout, LocalHelp)
		return 0, false, nil
	case strings.HasPrefix(line, "switch"):
		name := strings.TrimLeftFunc(line[len("switch"):], isSpace)
		if c.Switch(name) != nil {
			return 1, false, nil
		}
		fmt.Fprintf(c.Stdout, "Switched to '%s'\n", name)
		return 0, false, nil
	case strings.HasPrefix(line, "log"):
		return 0, false, c.log(ctx, strings.TrimLeftFunc(line[len("log"):], isSpace))
	case strings.HasPrefix(line, "umlfs"):
		fd, perr := strconv.Atoi(strings.TrimSpace(line[len("umlfs"):]))
		if perr != nil || fd < 0 {
			io.WriteString(c.Stdout, "ERR Failed to parse file descriptor\n")
			return mconsole.Errno(int(syscall.EINVAL)), false, nil
		}
		return c.send(ctx, line, os.NewFile(uintptr(fd), "umlfs")), false, nil
	case strings.HasPrefix(line, "mconsole-version"):
		io.WriteString(c.Stdout, "uml_mconsole client version 2\n")
		return 0, false, nil
	case strings.HasPrefix(line, "int"):
		pid, perr := c.pid()
		if perr != nil {
			io.WriteString(c.Stdout, "Cannot determine the PID of your UML session, not sending signal.\n")
			return 0, false, nil
		}
		syscall.Kill(pid, syscall.SIGINT)
		return 0, false, nil
	}
	return c.send(ctx, line, nil), false, nil
}

// pid reads the pid file next to the current socket.
func (c *Console) pid() (int, error) {
	if c.path == "" {
		return 0, ErrNotFound
	}
	return ReadPid(filepath.Join(filepath.Dir(c.path), "pid"))
}

// log sends text as "log <chunk>" requests of at most 506 bytes, then
// "log \n" if the text does not end in a newline; "-f FILE" sends the
// file's content the same way.
func (c *Console) log(ctx context.Context, text string) error {
	var r io.Reader = strings.NewReader(text)
	if f, ok := strings.CutPrefix(text, "-f"); ok {
		file, err := os.Open(strings.TrimLeftFunc(f, isSpace))
		if err != nil {
			return fmt.Errorf("opening file: %w", err)
		}
		defer file.Close()
		r = file
	}
	buf := make([]byte, logChunk)
	last := byte('\n')
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			c.send(ctx, "log "+string(buf[:n]), nil)
			last = buf[n-1]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading file: %w", err)
		}
	}
	if last != '\n' || text == "" {
		c.send(ctx, "log \n", nil)
	}
	return nil
}

// send sends a kernel command and prints "OK <text>" or "ERR <text>".
// Failures print one line on stderr and give result 1.
func (c *Console) send(ctx context.Context, line string, file *os.File) uint32 {
	if c.client == nil {
		if c.missing != "" {
			fmt.Fprintf(c.Stderr, "uml_mconsole: no UML instance %q: none of the sockets above exists\n", c.missing)
		} else {
			fmt.Fprintf(c.Stderr, "uml_mconsole: no UML instance selected (use 'switch <umid|socket>')\n")
		}
		return 1
	}
	line = rewriteConfig(line, c.Stderr)
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	var files []*os.File
	if file != nil {
		files = append(files, file)
	}
	resp, err := c.client.Send(ctx, line, files...)
	if err != nil {
		var errno syscall.Errno
		switch {
		case errors.Is(err, ErrGone):
			fmt.Fprintf(c.Stderr, "uml_mconsole: %s: the UML instance is gone (no one answers on the socket)\n", c.path)
		case errors.Is(err, ErrTimeout):
			fmt.Fprintf(c.Stderr, "uml_mconsole: %s: no reply within %v (the UML instance may be hung; see --timeout)\n", c.path, c.Timeout)
		case errors.As(err, &errno):
			fmt.Fprintf(c.Stderr, "Sending command to '%s' : %s\n", c.path, sys.Strerror(errno))
		default:
			fmt.Fprintf(c.Stderr, "uml_mconsole: %v\n", err)
		}
		return 1
	}
	io.WriteString(c.Stdout, resp.Line())
	return resp.Err
}

// rewriteConfig absolutizes the file names of "config ubd...=COW,BACKING"
// as the real client does before sending.
func rewriteConfig(line string, stderr io.Writer) string {
	rest, ok := strings.CutPrefix(line, "config")
	if !ok || !strings.HasPrefix(strings.TrimLeft(rest, " "), "ubd") {
		return line
	}
	prefix, value, ok := strings.Cut(line, "=")
	if !ok {
		return line
	}
	if cow, backing, two := strings.Cut(value, ","); two {
		return prefix + "=" + absolutize(cow, stderr) + "," + absolutize(backing, stderr)
	}
	return prefix + "=" + absolutize(value, stderr)
}

// absolutize makes name absolute with the physical directory path (as a
// chdir + getcwd would), leaving the last component alone. A directory part
// that cannot be entered prints the real client's message and leaves name
// unchanged (so does "/x", whose directory part is empty).
func absolutize(name string, stderr io.Writer) string {
	cwd, err := syscall.Getwd()
	if err != nil {
		return name
	}
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return cwd + "/" + name
	}
	dir, base := name[:i], name[i+1:]
	fail := func(err error) string {
		fmt.Fprintf(stderr, "absolutize : Can't cd to '%s', %s\n", dir, sys.Strerror(err))
		return name
	}
	if dir == "" {
		return fail(syscall.ENOENT)
	}
	full := dir // not filepath.Join: ".." must apply after symlinks, as chdir does
	if !filepath.IsAbs(full) {
		full = cwd + "/" + dir
	}
	st, err := os.Stat(full)
	if err != nil {
		return fail(err)
	}
	if !st.IsDir() {
		return fail(syscall.ENOTDIR)
	}
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return fail(err)
	}
	if real == "/" {
		return "/" + base
	}
	return real + "/" + base
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
}

// LineReader yields input lines for the interactive loop.
type LineReader interface {
	// ReadLine shows prompt and returns one line without its newline;
	// io.EOF at the end.
	ReadLine(prompt string) (string, error)
	Close() error
}

// PlainReader reads lines from a non-terminal the way GNU readline does in
// the real client: it echoes the prompt and the line to out, including the
// cursor-motion artefacts readline's redisplay adds to long lines (see
// Echo).
type PlainReader struct {
	in  *bufio.Reader
	out io.Writer
	// Term and Columns are $TERM and $COLUMNS as readline sees them.
	Term    string
	Columns int
}

// NewPlainReader reads lines from in, echoing to out.
func NewPlainReader(in io.Reader, out io.Writer) *PlainReader {
	return &PlainReader{in: bufio.NewReader(in), out: out, Term: "xterm"}
}

// ReadLine implements LineReader.
func (p *PlainReader) ReadLine(prompt string) (string, error) {
	io.WriteString(p.out, prompt)
	line, err := p.in.ReadString('\n')
	if err != nil && line == "" {
		return "", io.EOF
	}
	line = strings.TrimSuffix(line, "\n")
	io.WriteString(p.out, Echo(prompt, line, p.Term, p.Columns))
	return line, nil
}

// Echo returns what GNU readline writes after the prompt when it reads a
// whole line from a non-terminal (the line arriving in one piece, as from
// a pipe), for ASCII text. The screen width is columns ($COLUMNS) or 80.
//   - TERM unset or "dumb" (no cursor motion): horizontal scrolling. Once
//     prompt+line reaches width-1 columns, readline redraws "\r<" and the
//     last 2*(width/3)-1 characters of prompt+line.
//   - other terminals: when prompt+line ends exactly at the right margin,
//     readline forces the wrap with " \r", goes back up, right width-1
//     columns, clears and rewrites the last character.
func Echo(prompt, line, term string, columns int) string {
	w := columns
	if w <= 0 {
		w = 80
	}
	full := prompt + line
	n := len(full)
	if term == "" || term == "dumb" {
		if n <= w-2 {
			return line + "\n"
		}
		lmargin := max(n-2*(w/3), 0)
		return "\r<" + full[min(lmargin+1, n):] + "\n"
	}
	if line != "" && n%w == 0 {
		return line + " \r\x1b[A" + strings.Repeat("\x1b[C", w-1) + "\x1b[K" + line[len(line)-1:] + "\n"
	}
	return line + "\n"
}

// Close implements LineReader.
func (p *PlainReader) Close() error { return nil }

// Interact runs the interactive loop until quit or EOF (which prints a
// newline). Errors of single commands never end it; only "log -f" I/O
// errors do, with status 1.
func (c *Console) Interact(ctx context.Context, lr LineReader, flush func()) int {
	for {
		line, err := lr.ReadLine(c.Prompt())
		if err != nil {
			io.WriteString(c.Stdout, "\n")
			return 0
		}
		_, quit, cerr := c.Command(ctx, line)
		flush()
		if quit {
			return 0
		}
		if cerr != nil {
			fmt.Fprintf(c.Stderr, "%s\n", perrorText(cerr))
			return 1
		}
	}
}

// perrorText renders "opening file: <errno>" like perror.
func perrorText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		op, _, _ := strings.Cut(err.Error(), ":")
		return op + ": " + sys.Strerror(pe.Err)
	}
	return err.Error()
}
