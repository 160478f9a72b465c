package portchan

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/porthelper"
)

// Xterm defaults on Debian (the xterm= option's three fields).
const (
	DefaultEmulator    = "x-terminal-emulator"
	DefaultTitleSwitch = "-T"
	DefaultExecSwitch  = "-e"
)

// ErrNoDisplay is the kernel's refusal to open an xterm line without $DISPLAY.
var ErrNoDisplay = errors.New("xterm_open: $DISPLAY not set.")

// XtermConfig describes one xterm line.
type XtermConfig struct {
	// Emulator, TitleSwitch, ExecSwitch: the xterm= fields; empty keeps
	// the defaults.
	Emulator, TitleSwitch, ExecSwitch string
	// Title is the window title (see Title).
	Title string
	// Helper defaults to DefaultHelper if executable, else the bare name
	// "port-helper" (PATH lookup by the emulator); UML_PORT_HELPER does not
	// apply to xterm lines.
	Helper string
	// Dir holds the socket (default "/tmp").
	Dir string
	// Env is the emulator's environment (default os.Environ()); it must
	// set DISPLAY.
	Env []string
}

// Title is the window title the kernel gives a line: "Virtual Console #n"
// or "Serial Line #n", with " (umid)" when a umid is known.
func Title(serial bool, n int, umid string) string {
	s := fmt.Sprintf("Virtual Console #%d", n)
	if serial {
		s = fmt.Sprintf("Serial Line #%d", n)
	}
	if umid != "" {
		s += " (" + umid + ")"
	}
	return s
}

// XtermArgv is the emulator's argv for cfg and socket path.
func XtermArgv(cfg XtermConfig, socket string) []string {
	return []string{or(cfg.Emulator, DefaultEmulator), or(cfg.TitleSwitch, DefaultTitleSwitch), cfg.Title,
		or(cfg.ExecSwitch, DefaultExecSwitch), cfg.Helper, porthelper.SocketFlag, socket}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// OpenXterm runs the terminal emulator and returns the terminal its
// port-helper sends. Like the kernel it does not give up when the emulator
// exits (launchers such as gnome-terminal's exit at once); only ctx bounds
// the wait, after which the emulator is killed.
func OpenXterm(ctx context.Context, cfg XtermConfig) (*Terminal, error) {
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if !hasDisplay(cfg.Env) {
		return nil, ErrNoDisplay
	}
	if cfg.Helper == "" {
		cfg.Helper = DefaultHelper
		if CheckHelper(DefaultHelper, false) != nil {
			cfg.Helper = "port-helper"
		}
	}
	if cfg.Dir == "" {
		cfg.Dir = "/tmp"
	}
	path, err := uniqueName(cfg.Dir, "xterm-pipe")
	if err != nil {
		return nil, fmt.Errorf("xterm_open : mkstemp failed: %w", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("xterm_open : create_unix_socket failed: %w", err)
	}
	defer conn.Close()
	defer os.Remove(path)

	argv := XtermArgv(cfg, path)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = cfg.Env
	proc, err := startChild(cmd)
	if err != nil {
		return nil, fmt.Errorf("xterm_open : run_helper failed: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	data, files, _, err := fdpass.Recv(conn, porthelper.MessageSize, 1)
	stop()
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		proc.kill()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("xterm_open : os_rcv_fd: %w", ctx.Err())
		}
		return nil, fmt.Errorf("xterm_open : os_rcv_fd failed: %w", err)
	}
	t, err := terminalFrom(files[0], data, proc)
	if err != nil {
		proc.kill()
		return nil, err
	}
	return t, nil
}

func hasDisplay(env []string) bool {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "DISPLAY="); ok && v != "" {
			return true
		}
	}
	return false
}

// uniqueName is mkstemp(dir/prefixXXXXXX) with the file removed again.
func uniqueName(dir, prefix string) (string, error) {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for range 100 {
		var b [6]byte
		rand.Read(b[:])
		for i := range b {
			b[i] = chars[int(b[i])%len(chars)]
		}
		p := filepath.Join(dir, prefix+string(b[:]))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		f.Close()
		return p, os.Remove(p)
	}
	return "", fmt.Errorf("no unique name in %s", dir)
}
